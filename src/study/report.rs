//! What a study leaves for people, built as `evaluate` builds its report: `fig6.png`,
//! `peaks.png`, a self-contained `report.html` and `summary.md`, all from the saved
//! `study_summary` and the `study_log` curves of the session.

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::StudyError;
use super::plots;
use super::summary::{self, RunSummary};
use crate::html;
use crate::query::Session;
use crate::store::StoreLocation;

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() { format!("{v:.digits$}") } else { "–".into() }
}

fn pair(v: [f64; 2]) -> String {
    format!("{} / {}", num(v[0], 3), num(v[1], 3))
}

/// Thousands of images, for the table.
fn k_images(n: i64) -> String {
    format!("{:.1}k", n as f64 / 1000.0)
}

const HEADER: [&str; 10] = [
    "study",
    "start",
    "subset",
    "images (N)",
    "epochs",
    "first LV / MY",
    "raw peak LV / MY (at)",
    "smoothed peak LV / MY (at)",
    "final LV / MY",
    "wall time",
];

/// The summary table's cells, one row per run.
pub fn table_rows(runs: &[RunSummary]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|r| {
            let smooth = |k: usize| r.smooth_peak[k].map(|v| num(v, 3)).unwrap_or_else(|| "–".into());
            let smooth_at = |k: usize| r.smooth_peak_images[k].map(k_images).unwrap_or_else(|| "–".into());
            vec![
                r.study.clone(),
                r.start.clone(),
                r.subset.clone(),
                r.subset_images.to_string(),
                r.epochs.to_string(),
                pair(r.first),
                format!("{} ({}, {})", pair(r.peak), k_images(r.peak_images[0]), k_images(r.peak_images[1])),
                format!("{} / {} ({}, {})", smooth(0), smooth(1), smooth_at(0), smooth_at(1)),
                pair(r.last),
                r.seconds.map(|s| format!("{:.1} h", s / 3600.0)).unwrap_or_else(|| "–".into()),
            ]
        })
        .collect()
}

async fn put(out: &StoreLocation, name: &str, body: Vec<u8>) -> Result<String, StudyError> {
    let path = out.child(name);
    let url = out.object_url(&path);
    out.store.put(&path, PutPayload::from(Bytes::from(body))).await.map_err(|source| StudyError::Put { url: url.clone(), source })?;
    Ok(url)
}

const NOTES: &str = "First: after the first epoch. Raw peak: the highest logged value, with the images seen there \
(LV, MY). Smoothed peak: the highest value of a loess fit (span 0.75, degree 2, as ggplot's geom_smooth) of Dice on \
images seen. Final: the last validation point — the exported model.";

/// Reads the study's summary and curves from the session and writes the figures and reports
/// to `out`; returns what it wrote and the runs.
pub async fn write(session: &Session, out: &StoreLocation, study: Option<&str>) -> Result<(Vec<String>, Vec<RunSummary>), StudyError> {
    let runs: Vec<RunSummary> = summary::runs(session).await?.into_iter().filter(|r| study.is_none_or(|s| r.study == s)).collect();
    if runs.is_empty() {
        return Err(StudyError::Empty(format!(
            "`study_summary` has no runs{}: run `cinestream study`, or give another group's log as `study_log` \
             (e.g. --table authors_log=train_log_combined.csv --table authors_subsets=image_subsets.tsv \
             --view study_log=\"SELECT * FROM authors_study_log\")",
            study.map(|s| format!(" of study `{s}`")).unwrap_or_default()
        )));
    }
    let curves = summary::curves(session, study).await?;
    let plot = |name: &str, r: Result<Vec<u8>, String>| r.map_err(|message| StudyError::Plot { name: name.into(), message });
    let pngs = [("fig6.png", plot("fig6.png", plots::fig6(&runs, &curves))?), ("peaks.png", plot("peaks.png", plots::peaks(&runs))?)];
    let mut written = Vec::new();
    for (name, png) in &pngs {
        written.push(put(out, name, png.clone()).await?);
    }
    let rows = table_rows(&runs);
    let mut studies: Vec<&str> = runs.iter().map(|r| r.study.as_str()).collect();
    studies.dedup();
    let title = format!("Transfer-learning study: {}", studies.join(", "));
    let mut body = format!("<h1>{}</h1>\n<p>{}</p>\n", html::escape(&title), html::escape(NOTES));
    body.push_str(&html::table(&HEADER, &rows));
    body.push_str("<h2>Validation Dice against images seen (the paper's Fig. 6)</h2>\n");
    body.push_str(&format!("<div>{}</div>\n", html::img(&pngs[0].1, "fig6")));
    body.push_str("<h2>Peak Dice per subset and start</h2>\n");
    body.push_str(&format!("<div>{}</div>\n", html::img(&pngs[1].1, "peaks")));
    written.push(put(out, "report.html", html::page(&title, &body).into_bytes()).await?);
    let md = format!("# {title}\n\n{NOTES}\n\n{}\n![Fig. 6](fig6.png)\n\n![Peaks](peaks.png)\n", html::markdown_table(&HEADER, &rows));
    written.push(put(out, "summary.md", md.into_bytes()).await?);
    Ok((written, runs))
}
