//! `cinestream evaluate` on phantom studies: the truth against itself (Dice 1, no volume or EF
//! error), against copies of itself shifted by k pixels (each image's Dice as counted here from
//! the masks), the EF statistics against `ef_error_stats`, another group's volume table through
//! `--table`, the plots, `report.html` in headless Chromium, and bad input.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::AsArray;
use cinestream::tables::label_rows::{FrameGrid, LabelRow, append_labels};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{cli, f64s, i64s, open, phantom_data, png_pixels, sql, strs};

/// One phantom mask with its place.
pub struct Phantom {
    study: String,
    split: Option<String>,
    slice: i32,
    frame: i32,
    grid: FrameGrid,
    key: String,
    pub mask: Vec<u8>,
}

pub async fn phantom_masks(data: &str) -> Vec<Phantom> {
    let b = sql(data, "SELECT study_id, split, slice_index, frame_index, height, width, pixel_spacing_row_mm, pixel_spacing_col_mm, slice_spacing_mm, source_key, mask FROM labels WHERE labeller = 'phantom' ORDER BY study_id, slice_index, frame_index").await;
    let mut out = Vec::new();
    for batch in &b {
        let one = [batch.clone()];
        let (ids, splits, keys) = (strs(&one, "study_id"), strs(&one, "split"), strs(&one, "source_key"));
        let (z, t, h, w) = (i64s(&one, "slice_index"), i64s(&one, "frame_index"), i64s(&one, "height"), i64s(&one, "width"));
        let (sr, sc, ss) = (f64s(&one, "pixel_spacing_row_mm"), f64s(&one, "pixel_spacing_col_mm"), f64s(&one, "slice_spacing_mm"));
        let masks = batch.column_by_name("mask").unwrap().as_binary::<i32>();
        for i in 0..batch.num_rows() {
            out.push(Phantom {
                study: ids[i].clone().unwrap(),
                split: splits[i].clone(),
                slice: z[i] as i32,
                frame: t[i] as i32,
                grid: FrameGrid {
                    height: h[i] as i32,
                    width: w[i] as i32,
                    pixel_spacing_row_mm: sr[i].unwrap(),
                    pixel_spacing_col_mm: sc[i].unwrap(),
                    slice_spacing_mm: ss[i].unwrap(),
                },
                key: keys[i].clone().unwrap(),
                mask: masks.value(i).to_vec(),
            });
        }
    }
    out
}

/// The mask moved `k` columns to the right (zeros come in on the left).
fn shifted(m: &Phantom, k: usize) -> Vec<u8> {
    let w = m.grid.width as usize;
    let mut out = vec![0u8; m.mask.len()];
    for (r, row) in m.mask.chunks(w).enumerate() {
        out[r * w + k..(r + 1) * w].copy_from_slice(&row[..w - k]);
    }
    out
}

/// Dice of class `c` between a mask and itself moved `k` columns right, counted pixel by pixel.
fn shift_dice(m: &Phantom, k: usize, c: u8) -> f64 {
    let w = m.grid.width as usize;
    let (mut a, mut b, mut both) = (0usize, 0usize, 0usize);
    for row in m.mask.chunks(w) {
        for col in 0..w {
            let here = row[col] == c;
            let moved = col >= k && row[col - k] == c;
            a += here as usize;
            b += moved as usize;
            both += (here && moved) as usize;
        }
    }
    if a + b == 0 { 1.0 } else { 2.0 * both as f64 / (a + b) as f64 }
}

/// Commits `labels` rows of a new labeller (one published run, as `cinestream label` does).
pub async fn add_labeller(data: &str, name: &str, rows: &[(&Phantom, Vec<u8>)]) {
    let label_rows: Vec<LabelRow> = rows
        .iter()
        .map(|(p, mask)| LabelRow {
            study_id: &p.study,
            split: p.split.as_deref(),
            slice_index: p.slice,
            frame_index: p.frame,
            labeller: name,
            grid: p.grid,
            source_key: &p.key,
            fill: None,
            mask,
        })
        .collect();
    append_labels(&open(data), &format!("test-{name}"), &label_rows).await.unwrap();
}

pub fn read_parquet(path: &std::path::Path) -> Vec<arrow::array::RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn evaluate(data: &str, out: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["evaluate", "--data", data, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_against_itself_shifted_copies_and_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, _) = phantom_data(dir.path(), 4, 21, "none").await;
    let data = data.as_str();
    let masks = phantom_masks(data).await;
    assert!(masks.len() > 100);
    add_labeller(data, "copy", &masks.iter().map(|m| (m, m.mask.clone())).collect::<Vec<_>>()).await;
    add_labeller(data, "shift3", &masks.iter().map(|m| (m, shifted(m, 3))).collect::<Vec<_>>()).await;

    // The truth's masks against an exact copy: Dice 1 everywhere, no volume or EF difference.
    let out = dir.path().join("copy");
    let (ok, stdout, err) = evaluate(data, &out, &["--labeller", "copy", "--reference", "phantom"]);
    assert!(ok, "evaluate failed: {err}");
    assert!(stdout.contains("Dice LV mean / median") && stdout.contains("1.0000"), "{stdout}");
    let imgs = read_parquet(&out.join("evaluation_images.parquet"));
    assert_eq!(f64s(&imgs, "dice_lv").len(), masks.len(), "one row per image");
    assert!(f64s(&imgs, "dice_lv").iter().chain(&f64s(&imgs, "dice_my")).all(|d| *d == Some(1.0)));
    let st = read_parquet(&out.join("evaluation_studies.parquet"));
    assert_eq!(strs(&st, "study_id").len(), 4);
    for c in ["edv_diff_ml", "esv_diff_ml", "ef_diff_pct", "ef_error_pct"] {
        assert!(f64s(&st, c).iter().all(|v| v.unwrap().abs() < 1e-9), "{c}: {:?}", f64s(&st, c));
    }

    // Shifted by 3 pixels: each image's Dice is the overlap counted here.
    let out = dir.path().join("shift3");
    let (ok, _, err) = evaluate(data, &out, &["--labeller", "shift3", "--reference", "phantom"]);
    assert!(ok, "evaluate failed: {err}");
    let imgs = read_parquet(&out.join("evaluation_images.parquet"));
    let want: BTreeMap<(String, i64, i64), (f64, f64)> =
        masks.iter().map(|m| ((m.study.clone(), m.slice as i64, m.frame as i64), (shift_dice(m, 3, 1), shift_dice(m, 3, 2)))).collect();
    let (ids, z, t, lv, my) =
        (strs(&imgs, "study_id"), i64s(&imgs, "slice_index"), i64s(&imgs, "frame_index"), f64s(&imgs, "dice_lv"), f64s(&imgs, "dice_my"));
    assert_eq!(ids.len(), want.len());
    let mut below_one = 0;
    for i in 0..ids.len() {
        let w = want[&(ids[i].clone().unwrap(), z[i], t[i])];
        assert!(
            (lv[i].unwrap() - w.0).abs() < 1e-12 && (my[i].unwrap() - w.1).abs() < 1e-12,
            "image {i}: {:?}/{:?} vs {w:?}",
            lv[i],
            my[i]
        );
        below_one += (w.0 < 1.0) as usize;
    }
    assert!(below_one > ids.len() / 2, "a 3-pixel shift lowers most images' Dice ({below_one})");
    let mean_lv = want.values().map(|w| w.0).sum::<f64>() / want.len() as f64;
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!((summary["dice"]["mean"][0].as_f64().unwrap() - mean_lv).abs() < 1e-9, "{}", summary["dice"]);

    // Against the truth volumes: the EF statistics are `ef_error_stats` on the same data.
    let out = dir.path().join("truth");
    let (ok, stdout, err) = evaluate(data, &out, &["--labeller", "shift3", "--reference", "truth"]);
    assert!(ok, "evaluate failed: {err}\n{stdout}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let stats = sql(data, "SELECT * FROM ef_error_stats WHERE labeller = 'shift3'").await;
    for c in ["mean", "sd", "median", "q1", "q3", "iqr"] {
        let (got, want) = (summary["ef_errors"][c].as_f64().unwrap(), f64s(&stats, c)[0].unwrap());
        assert!((got - want).abs() < 1e-9, "{c}: evaluate {got} vs ef_error_stats {want}");
    }
    assert_eq!(summary["ef_errors"]["studies"].as_i64().unwrap(), i64s(&stats, "studies")[0]);
    // The phantom's own masks against its truth volumes: no EF error (volumes by the same rule).
    let out = dir.path().join("phantom-truth");
    let (ok, _, err) = evaluate(data, &out, &["--labeller", "phantom", "--reference", "truth"]);
    assert!(ok, "evaluate failed: {err}");
    let st = read_parquet(&out.join("evaluation_studies.parquet"));
    assert!(f64s(&st, "ef_error_pct").iter().all(|v| v.unwrap() < 0.05), "{:?}", f64s(&st, "ef_error_pct"));

    // Another group's volume table through --table, as `sql` takes it.
    let vols =
        sql(data, "SELECT study_id, edv_ml * 1.1 AS edv_ml, esv_ml AS esv_ml FROM volumes WHERE labeller = 'phantom' ORDER BY study_id")
            .await;
    let mut csv = String::from("study_id,labeller,edv_ml,esv_ml\n");
    for ((id, d), s) in strs(&vols, "study_id").iter().zip(f64s(&vols, "edv_ml")).zip(f64s(&vols, "esv_ml")) {
        csv.push_str(&format!("{},theirs,{},{}\n", id.as_ref().unwrap(), d.unwrap(), s.unwrap()));
    }
    let theirs = dir.path().join("theirs.csv");
    std::fs::write(&theirs, csv).unwrap();
    let out = dir.path().join("theirs");
    let table = format!("volumes={}", theirs.display());
    let (ok, stdout, err) = evaluate(data, &out, &["--labeller", "theirs", "--reference", "truth", "--table", &table]);
    assert!(ok, "evaluate with --table volumes failed: {err}");
    let st = read_parquet(&out.join("evaluation_studies.parquet"));
    let rel = f64s(&st, "edv_rel_diff");
    assert!(rel.len() == 4 && rel.iter().all(|r| (r.unwrap() - 0.1).abs() < 1e-3), "their EDV is 10% high: {rel:?}\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_plots_report_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, truth) = phantom_data(dir.path(), 3, 8, "none").await;
    let data = data.as_str();
    let masks = phantom_masks(data).await;
    add_labeller(data, "shift2", &masks.iter().map(|m| (m, shifted(m, 2))).collect::<Vec<_>>()).await;
    // Two labellers with no frame in common: odd frames and even frames.
    add_labeller(data, "odd", &masks.iter().filter(|m| m.frame % 2 == 1).map(|m| (m, m.mask.clone())).collect::<Vec<_>>()).await;
    add_labeller(data, "even", &masks.iter().filter(|m| m.frame % 2 == 0).map(|m| (m, m.mask.clone())).collect::<Vec<_>>()).await;

    let out = dir.path().join("eval");
    let (ok, stdout, err) = evaluate(data, &out, &["--labeller", "shift2", "--reference", "phantom", "--worst", "2"]);
    assert!(ok, "evaluate failed: {err}");
    for name in ["bland_altman_ef.png", "bland_altman_volumes.png", "dice_histograms.png", "slice_positions.png"] {
        let (w, h, px, ch) = png_pixels(&out.join(name));
        assert_eq!((w, h), (1000, 520), "{name}");
        let distinct: BTreeSet<&[u8]> = px.chunks_exact(ch).collect();
        let ink = px.chunks_exact(ch).filter(|p| p[..3] != [255, 255, 255]).count();
        assert!(distinct.len() > 20 && ink > 5_000, "{name}: {} colours, {ink} non-white pixels", distinct.len());
    }
    assert!(stdout.contains("report.html"), "{stdout}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("Dice LV") && md.contains("\\|EF error\\|"), "{md}");
    // Every table row has its two cells: no pipe inside a cell left unescaped.
    for row in md.lines().filter(|l| l.starts_with('|')) {
        let cells = row.replace("\\|", "").matches('|').count() - 1;
        assert_eq!(cells, 2, "a summary.md row with {cells} cells: {row}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), 4 + 2, "four plots and two overlays");
    assert!(!html.contains("src=\"http") && !html.contains("src=\"/"), "self-contained");
    chromium_loads_every_image(&out.join("report.html"), dir.path(), 6);

    // Unknown labeller: named, with the ones there are.
    let (ok, _, err) = evaluate(data, &dir.path().join("x"), &["--labeller", "nobody", "--reference", "phantom"]);
    assert!(!ok && err.contains("labeller `nobody`") && err.contains("phantom (3 studies)"), "{err}");
    // No overlapping frames: named; the volume comparison still runs.
    let out = dir.path().join("odd");
    let (ok, stdout, err) = evaluate(data, &out, &["--labeller", "odd", "--reference", "even"]);
    assert!(ok, "{err}");
    assert!(err.contains("no frame masked by both") && truth.studies.iter().all(|s| err.contains(&s.study_id)), "{err}");
    assert!(stdout.contains("studies evaluated") && out.join("evaluation_studies.parquet").exists(), "{stdout}");
    // A study without truth volumes: named, the others evaluated.
    let gone = &truth.studies[1].study_id;
    let view =
        format!("truth=SELECT study_id, truth_esv_ml AS systole_ml, truth_edv_ml AS diastole_ml FROM studies WHERE study_id <> '{gone}'");
    let out = dir.path().join("no-truth");
    let (ok, _, err) = evaluate(data, &out, &["--labeller", "shift2", "--reference", "truth", "--view", &view]);
    assert!(ok, "{err}");
    assert!(err.contains("no truth volumes") && err.contains(gone.as_str()), "{err}");
    assert_eq!(strs(&read_parquet(&out.join("evaluation_studies.parquet")), "study_id").len(), 2);
}

/// Opens `report` in headless Chromium and checks, in the page, that `expected` images loaded
/// (each has a natural size); keeps a screenshot beside it.
fn chromium_loads_every_image(report: &std::path::Path, dir: &std::path::Path, expected: usize) {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(browser) = browser else {
        assert!(std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(), "headless Chromium is required (apt-get install chromium)");
        eprintln!("SKIPPED report.html in Chromium: no chromium");
        return;
    };
    // A copy of the report with a probe that writes what it finds into the page title.
    let probe = "<script>window.addEventListener('load', () => { const im = [...document.images]; \
                 document.title = 'images=' + im.length + ' loaded=' + im.filter(i => i.complete && i.naturalWidth > 0).length; });</script>";
    let html = std::fs::read_to_string(report).unwrap().replace("</body>", &format!("{probe}</body>"));
    let probed = dir.join("probed.html");
    std::fs::write(&probed, html).unwrap();
    let profile = dir.join("chromium-profile");
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000"];
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let url = format!("file://{}", probed.display());
    let out = std::process::Command::new(browser).args(common).arg(&profile_arg).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let want = format!("images={expected} loaded={expected}");
    assert!(dom.contains(&want), "Chromium: expected `{want}` in the title; stderr: {}", String::from_utf8_lossy(&out.stderr));
    let shot = report.with_file_name("report.png");
    let out = std::process::Command::new(browser)
        .args(common)
        .arg(&profile_arg)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,2400")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    assert!(out.status.success() && shot.exists(), "screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let (w, h, px, ch) = png_pixels(&shot);
    let ink = px.chunks_exact(ch).filter(|p| p[..3] != [255, 255, 255]).count();
    assert!(w >= 1000 && h >= 2000 && ink > (w * h) as usize / 20, "the screenshot shows the report ({w}×{h}, {ink} non-white px)");
}
