//! What an evaluation leaves for people: the PNG plots, a self-contained `report.html` (tables,
//! plots and the worst studies' overlays embedded as data URIs, so it opens from a bucket or a
//! laptop without a server), `summary.md` and `summary.json`, and the terminal summary.

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::agreement::{BAD_VOLUME, BlandAltman, GOOD_EF, StudyRow};
use super::{EvaluateConfig, EvaluateError, Evaluation, plots};
use crate::html::{escape as html_escape, img, page};
use crate::query::Session;
use crate::store::StoreLocation;
use crate::viewer::{montage, study};

async fn put(out: &StoreLocation, name: &str, body: Vec<u8>) -> Result<String, EvaluateError> {
    let path = out.child(name);
    let url = out.object_url(&path);
    out.store.put(&path, PutPayload::from(Bytes::from(body))).await.map_err(|source| EvaluateError::Put { url: url.clone(), source })?;
    Ok(url)
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "–".into())
}

impl Evaluation {
    /// The summary as (label, value) rows: the terminal, summary.md and report.html show these.
    pub fn summary_rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![("studies evaluated".to_string(), self.studies.len().to_string())];
        if self.dice.images > 0 {
            rows.push(("images (Dice)".into(), self.dice.images.to_string()));
            rows.push(("Dice LV mean / median".into(), format!("{:.4} / {:.3}", self.dice.mean[0], self.dice.median[0])));
            rows.push(("Dice MY mean / median".into(), format!("{:.4} / {:.3}", self.dice.mean[1], self.dice.median[1])));
            let d = &self.dice;
            rows.push((
                "Dice LV / MY over images the reference has it in".into(),
                format!(
                    "{:.4} ({} images) / {:.4} ({} images)",
                    d.mean_nonempty[0], d.images_nonempty[0], d.mean_nonempty[1], d.images_nonempty[1]
                ),
            ));
        }
        let e = &self.ef_errors;
        rows.push(("|EF error| mean (sd)".into(), format!("{} ({})", num(e.mean, 2), num(e.sd, 2))));
        rows.push((
            "|EF error| median [IQR]".into(),
            format!("{} [{} … {}, IQR {}]", num(e.median, 2), num(e.q1, 2), num(e.q3, 2), num(e.iqr, 2)),
        ));
        rows.push(("EF not computable (error 100)".into(), e.not_computable.to_string()));
        let ba = |b: &Option<BlandAltman>, unit: &str| {
            b.map(|b| format!("{:+.2} {unit}, limits {:.2} … {:.2}", b.mean_diff, b.lower, b.upper)).unwrap_or_else(|| "–".into())
        };
        rows.push(("EF bias (Bland–Altman)".into(), ba(&self.bland_altman_ef, "pp")));
        rows.push(("EDV bias".into(), ba(&self.bland_altman_edv, "mL")));
        rows.push(("ESV bias".into(), ba(&self.bland_altman_esv, "mL")));
        let (bad, judged) = self.good_ef_bad_volumes;
        let share = if judged > 0 { format!("{:.1}% ({bad} of {judged})", 100.0 * bad as f64 / judged as f64) } else { "–".into() };
        rows.push((
            format!("good EF, bad volumes (|rel EF err| ≤ {:.0}%, a volume > {:.0}% off)", GOOD_EF * 100.0, BAD_VOLUME * 100.0),
            share,
        ));
        if self.unpaired_images.iter().any(|n| *n > 0) {
            rows.push((
                "images masked by one only".into(),
                format!("{} by {}, {} by {}", self.unpaired_images[0], self.labeller, self.unpaired_images[1], self.reference),
            ));
        }
        rows
    }

    /// The terminal summary.
    pub fn render(&self) -> String {
        let rows = self.summary_rows();
        let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let mut out = format!("{} against {}\n", self.labeller, self.reference);
        for (k, v) in &rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("  warning: {p}\n"));
        }
        for w in &self.written {
            out.push_str(&format!("  wrote {w}\n"));
        }
        out
    }

    /// The studies that agree worst: lowest mean Dice (LV and MY), else largest |EF error|.
    pub fn worst(&self, n: usize) -> Vec<&StudyRow> {
        let mut rows: Vec<&StudyRow> = self.studies.iter().collect();
        let score = |r: &StudyRow| match (r.dice_lv_mean, r.dice_my_mean) {
            (Some(a), Some(b)) => (a + b) / 2.0,
            _ => -r.ef_error_pct,
        };
        rows.sort_by(|a, b| score(a).total_cmp(&score(b)).then(a.study_id.cmp(&b.study_id)));
        rows.truncate(n);
        rows
    }
}

fn summary_md(ev: &Evaluation) -> String {
    let mut s = format!("# Evaluation: `{}` against `{}`\n\n| | |\n|---|---|\n", ev.labeller, ev.reference);
    // A `|` inside a cell (`|EF error|`) would end it: Markdown tables take it escaped.
    let cell = |t: &str| t.replace('|', "\\|");
    for (k, v) in ev.summary_rows() {
        s.push_str(&format!("| {} | {} |\n", cell(&k), cell(&v)));
    }
    if !ev.problems.is_empty() {
        s.push_str("\n## Left out\n\n");
        for p in &ev.problems {
            s.push_str(&format!("- {p}\n"));
        }
    }
    s.push_str("\nPer image: `evaluation_images.parquet`; per study: `evaluation_studies.parquet`; plots and overlays: `report.html`.\n");
    s
}

fn study_table(rows: &[&StudyRow]) -> String {
    let mut s = String::from(
        "<table><tr><th>study</th><th>split</th><th>images</th><th>Dice LV</th><th>Dice MY</th><th>EDV</th><th>ref EDV</th><th>ESV</th><th>ref ESV</th><th>EF</th><th>ref EF</th><th>|EF error|</th></tr>\n",
    );
    for r in rows {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>\n",
            html_escape(&r.study_id),
            html_escape(r.split.as_deref().unwrap_or("")),
            r.images,
            num(r.dice_lv_mean, 3),
            num(r.dice_my_mean, 3),
            num(r.edv_ml, 1),
            num(r.reference_edv_ml, 1),
            num(r.esv_ml, 1),
            num(r.reference_esv_ml, 1),
            num(r.ef_pct, 1),
            num(r.reference_ef_pct, 1),
            r.ef_error_pct
        ));
    }
    s.push_str("</table>\n");
    s
}

/// Writes the plots, the report and the summaries; returns their URLs.
pub async fn write(session: &Session, cfg: &EvaluateConfig, ev: &Evaluation, out: &StoreLocation) -> Result<Vec<String>, EvaluateError> {
    let plot = |name: &str, r: Result<Vec<u8>, String>| {
        r.map(|png| (name.to_string(), png)).map_err(|message| EvaluateError::Data(format!("drawing {name}: {message}")))
    };
    let mut pngs = vec![
        plot("bland_altman_ef.png", plots::bland_altman_ef(&ev.studies, ev.bland_altman_ef.as_ref(), &ev.labeller, &ev.reference))?,
        plot(
            "bland_altman_volumes.png",
            plots::bland_altman_volumes(&ev.studies, ev.bland_altman_edv.as_ref(), ev.bland_altman_esv.as_ref()),
        )?,
    ];
    if ev.dice.images > 0 {
        pngs.push(plot("dice_histograms.png", plots::dice_histograms(&ev.dice))?);
    }
    if let Some(p) = ev.slice_positions.as_ref().filter(|p| p.images.iter().any(|n| *n > 0)) {
        pngs.push(plot("slice_positions.png", plots::slice_positions(p))?);
    }
    for (name, png) in &cfg.attachments {
        if !png.starts_with(b"\x89PNG") {
            return Err(EvaluateError::Data(format!("the attachment `{name}` is not a PNG image")));
        }
        pngs.push((name.clone(), png.clone()));
    }
    let mut written = Vec::new();
    for (name, png) in &pngs {
        written.push(put(out, name, png.clone()).await?);
    }

    // The worst studies with the evaluated labeller's masks outlined (the `export` montage).
    let worst = ev.worst(cfg.worst);
    let mut overlays = String::new();
    for r in &worst {
        match study::read(session, &r.study_id, &ev.labeller).await {
            Ok(s) => {
                let frames: Vec<usize> = [s.ed_frame, s.es_frame].into_iter().flatten().collect();
                if let Some(png) = montage::montage(&s, if frames.is_empty() { &[0] } else { &frames }) {
                    overlays.push_str(&format!(
                        "<h3>{} — Dice LV {}, MY {}, |EF error| {:.2}</h3>\n<p>ED (top) and ES, apex left; {} masks outlined (LV red, MY green, RV blue).</p>\n{}\n",
                        html_escape(&r.study_id),
                        num(r.dice_lv_mean, 3),
                        num(r.dice_my_mean, 3),
                        r.ef_error_pct,
                        html_escape(&ev.labeller),
                        img(&png, &format!("study {}", r.study_id))
                    ));
                }
            }
            Err(e) => overlays.push_str(&format!("<p>{}: no overlay ({})</p>\n", html_escape(&r.study_id), html_escape(&e.to_string()))),
        }
    }

    let mut html = String::new();
    html.push_str(&format!("<h1>{} against {}</h1>\n<table>\n", html_escape(&ev.labeller), html_escape(&ev.reference)));
    for (k, v) in ev.summary_rows() {
        html.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>\n", html_escape(&k), html_escape(&v)));
    }
    html.push_str("</table>\n");
    if !ev.problems.is_empty() {
        html.push_str("<h2>Left out</h2><ul>\n");
        for p in &ev.problems {
            html.push_str(&format!("<li>{}</li>\n", html_escape(p)));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("<h2>Plots</h2>\n");
    for (name, png) in &pngs {
        html.push_str(&format!("<div>{}</div>\n", img(png, name)));
    }
    html.push_str(&format!("<h2>The {} studies that agree worst</h2>\n", worst.len()));
    html.push_str(&study_table(&worst));
    html.push_str(&overlays);
    html.push_str("<p>Every study: <code>evaluation_studies.parquet</code>; every image: <code>evaluation_images.parquet</code>.</p>\n");
    written.push(put(out, "report.html", page("cinestream evaluation", &html).into_bytes()).await?);
    written.push(put(out, "summary.md", summary_md(ev).into_bytes()).await?);
    written.push(put(out, "summary.json", serde_json::to_vec_pretty(ev).expect("serialises")).await?);
    Ok(written)
}
