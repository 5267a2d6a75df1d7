//! ED/ES frames from a dataset's metadata: ACDC's `Info.cfg` (1-based) and the M&Ms CSV
//! (`External code`, `ED`, `ES`, 0-based). Both are returned 0-based.

use std::collections::HashMap;

/// `ED: 1` and `ES: 12` of an ACDC `Info.cfg`, as 0-based frames.
pub fn info_cfg(text: &str) -> Result<[u32; 2], String> {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("no `{name}:` line"))
            .and_then(|(_, v)| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("`{name}: {}` is not a frame number (1-based)", v.trim()))
            })
    };
    Ok([field("ED")? - 1, field("ES")? - 1])
}

/// One CSV line's fields (double quotes may hold commas; `""` is a quote).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

/// The ED/ES of each code of an M&Ms information CSV; `None` when the CSV lacks its columns
/// (it is another table). Rows whose ED or ES is not a number are left out.
pub fn mnms_csv(text: &str) -> Option<HashMap<String, [u32; 2]>> {
    let mut lines = text.lines();
    let header = fields(lines.next()?.trim_start_matches('\u{feff}'));
    let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (code, ed, es) = (col("External code")?, col("ED")?, col("ES")?);
    let mut out = HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = fields(line);
        let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        if let (Ok(a), Ok(b)) = (get(ed).parse::<u32>(), get(es).parse::<u32>()) {
            out.insert(get(code).to_string(), [a, b]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_gives_zero_based_frames() {
        assert_eq!(info_cfg("ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n").unwrap(), [0, 11]);
        assert!(info_cfg("ED: 0\nES: 3\n").unwrap_err().contains("ED"));
        assert!(info_cfg("Group: NOR\n").unwrap_err().contains("no `ED:`"));
        let csv = "\u{feff}External code,VendorName,Vendor,Centre,ED,ES,Pathology\nA0S9V9,Siemens,A,1,0,9,\"HCM, mild\"\nB1C2D3,Philips,B,2,29,11,NOR\nX,GE,C,3,,4,NOR\n";
        let m = mnms_csv(csv).unwrap();
        assert_eq!((m["A0S9V9"], m["B1C2D3"], m.len()), ([0, 9], [29, 11], 2));
        assert!(mnms_csv("study,edv\n1,100\n").is_none());
    }
}
