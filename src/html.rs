//! Self-contained HTML reports: escaping, PNGs embedded as data URIs (a report opens from a
//! bucket or a laptop without a server), and one page style for every report.

use base64::Engine;

/// Text made safe for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A PNG as an `<img>` with a data URI.
pub fn img(png: &[u8], alt: &str) -> String {
    format!("<img alt=\"{}\" src=\"data:image/png;base64,{}\">", escape(alt), base64::engine::general_purpose::STANDARD.encode(png))
}

/// A whole page: `body` (HTML) under the shared style, titled `title` (text).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         img{{max-width:100%;border:1px solid #ddd;margin:.5em 0}}</style></head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// An HTML table: a header row, then the rows (cells are text, escaped here).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table>\n<tr>");
    for h in header {
        s.push_str(&format!("<th>{}</th>", escape(h)));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            s.push_str(&format!("<td>{}</td>", escape(c)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// A Markdown table of the same rows.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_tables_line_up() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        let rows = vec![vec!["R".to_string(), "<1>".to_string()]];
        assert!(table(&["start", "dice"], &rows).contains("<td>&lt;1&gt;</td>"));
        assert_eq!(markdown_table(&["a", "b"], &rows), "| a | b |\n|---|---|\n| R | <1> |\n");
        assert!(page("t & u", "<p>x</p>").contains("<title>t &amp; u</title>"));
    }
}
