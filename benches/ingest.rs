//! Ingest benchmark: images/s and peak RSS of `cinestream ingest` on a generated phantom data set
//! of ≥ 20,000 images, against the Python baseline (`benches/baseline_ingest.py`: pydicom, numpy
//! and pyarrow doing the same listing, parsing, orientation/scaling fixes and Parquet writing) on
//! the same data in the same run; the floors (listing + reading, and reading + parsing, every
//! input file on all cores); and peak RSS on a data set
//! 10× smaller, to show memory stays flat as data grows.
//!
//!     cargo bench --bench ingest                 # BENCH_DIR (default /var/tmp/cinestream-bench)
//!     BENCH_STUDIES=80 BENCH_SKIP_BASELINE=1 cargo bench --bench ingest
//!     BENCH_COMPARE_BIN=/path/to/old/cinestream BENCH_SKIP_BASELINE=1 cargo bench --bench ingest
//!     BENCH_ENHANCED=8 BENCH_STUDIES=8 BENCH_SKIP_BASELINE=1 cargo bench --bench ingest
//!     BENCH_NIFTI=8 BENCH_STUDIES=8 BENCH_SKIP_BASELINE=1 cargo bench --bench ingest
//!
//! With `BENCH_ENHANCED=N`, the N-study data set is also converted to Legacy Converted Enhanced
//! MR by highdicom (`tests/it/enhanced_convert.py`, one multi-frame file per study and image
//! size; kept in `BENCH_DIR` for later runs), and the classic and the multi-frame copy are
//! ingested alternately `BENCH_REPEAT` times: medians of images/s and peak RSS, and their ratio.
//!
//! With `BENCH_NIFTI=N`, the N-study data set is ingested with its phantom masks and exported
//! as NIfTI (`export --format nifti`, the ukbb layout; kept in `BENCH_DIR`), and the DICOM (with
//! its truth masks) and the NIfTI copy (with its `seg_sa` masks) are ingested alternately
//! `BENCH_REPEAT` times: medians of images/s (images as each input holds them: DICOM files,
//! NIfTI slices × frames) and peak RSS.
//!
//! With `BENCH_COMPARE_BIN`, another build of cinestream (an older commit, say) ingests the
//! large data set too, alternating with this one `BENCH_REPEAT` times (default 3); the medians
//! and their ratio are printed. Both must accept the same `ingest` flags.
//!
//! Needs /usr/bin/time (Debian package `time`) and, for the baseline, python3 with pydicom,
//! numpy and pyarrow.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Measured {
    seconds: f64,
    peak_rss_mib: f64,
}

/// Runs a command under /usr/bin/time, returning wall seconds and peak RSS.
fn timed(cmd: &mut Command) -> Measured {
    let mut full = Command::new("/usr/bin/time");
    full.arg("-f").arg("BENCH %e %M").arg(cmd.get_program()).args(cmd.get_args());
    full.envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let out = full.output().expect("run /usr/bin/time (apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} failed:\n{}\n{stderr}", cmd, String::from_utf8_lossy(&out.stdout));
    let line = stderr.lines().rev().find(|l| l.starts_with("BENCH ")).expect("time output");
    let mut it = line.split_whitespace().skip(1);
    let seconds: f64 = it.next().unwrap().parse().unwrap();
    let kib: f64 = it.next().unwrap().parse().unwrap();
    Measured { seconds, peak_rss_mib: kib / 1024.0 }
}

fn dicom_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            dicom_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "dcm") {
            out.push(p);
        }
    }
}

/// Lists and reads every file on all cores (and parses it when `parse`): the floor no ingest
/// beats. Returns (images, bytes, seconds).
fn floor(dir: &Path, parse: bool) -> (usize, u64, f64) {
    let t = Instant::now();
    let mut files = Vec::new();
    dicom_files(dir, &mut files);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let bytes: u64 = std::thread::scope(|s| {
        let chunks: Vec<_> = files
            .chunks(files.len().div_ceil(threads).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| {
                            let b = std::fs::read(p).unwrap();
                            if parse {
                                let _ = std::hint::black_box(cinestream::source::parse::parse_dicom(&b));
                            }
                            b.len() as u64
                        })
                        .sum::<u64>()
                })
            })
            .collect();
        chunks.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (files.len(), bytes, t.elapsed().as_secs_f64())
}

fn ensure_data(bin: &str, dir: &Path, studies: usize) -> PathBuf {
    let raw = dir.join(format!("raw-{studies}"));
    if !raw.join("synth.json").exists() {
        let _ = std::fs::remove_dir_all(&raw);
        eprintln!("generating {studies} phantom studies in {}", raw.display());
        // A realistic mix: most studies clean, some needing rotation and scaling fixes.
        let st = Command::new(bin)
            .args(["-q", "synth", "--out", raw.to_str().unwrap(), "--studies", &studies.to_string(), "--seed", "2026"])
            .args(["--defects", "rotated_arbitrary,scaled,rotated_90,image_size,missing_time_point"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    raw
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cinestream-bench".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let studies: usize = std::env::var("BENCH_STUDIES").ok().and_then(|s| s.parse().ok()).unwrap_or(80);
    let small_studies = (studies / 10).max(1);
    let mut rows = Vec::new();
    for n in [small_studies, studies] {
        let raw = ensure_data(bin, &dir, n);
        // Warm the page cache for every contender, then time the floors.
        floor(&raw, false);
        let (images, bytes, read_s) = floor(&raw, false);
        let (_, _, parse_s) = floor(&raw, true);
        let total = (images, bytes);
        let floors = (read_s, parse_s);
        let out = dir.join(format!("out-rust-{n}"));
        let _ = std::fs::remove_dir_all(&out);
        let rust = timed(Command::new(bin).args(["-q", "ingest", "--input", raw.to_str().unwrap(), "--output", out.to_str().unwrap()]));
        let python = if n == studies && std::env::var("BENCH_SKIP_BASELINE").is_err() {
            let out = dir.join(format!("out-python-{n}"));
            let _ = std::fs::remove_dir_all(&out);
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/baseline_ingest.py");
            Some(timed(Command::new("python3").args([script, raw.to_str().unwrap(), out.to_str().unwrap()])))
        } else {
            None
        };
        rows.push((n, total, floors, rust, python));
    }
    println!("\ningest benchmark ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!(
        "{:>8} {:>8} {:>9} | {:>10} {:>9} | {:>10} {:>9} | {:>7} | {:>11} {:>12}",
        "studies", "images", "MB", "rust img/s", "rust MiB", "py img/s", "py MiB", "ratio", "read img/s", "parse img/s"
    );
    for (n, (images, bytes), (read_s, parse_s), rust, py) in &rows {
        let r = *images as f64 / rust.seconds;
        let (p, pm, ratio) = match py {
            Some(p) => {
                let pr = *images as f64 / p.seconds;
                (format!("{pr:.0}"), format!("{:.0}", p.peak_rss_mib), format!("{:.1}×", r / pr))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{n:>8} {images:>8} {:>9.0} | {r:>10.0} {:>9.0} | {p:>10} {pm:>9} | {ratio:>7} | {:>11.0} {:>12.0}",
            *bytes as f64 / 1e6,
            rust.peak_rss_mib,
            *images as f64 / read_s,
            *images as f64 / parse_s
        );
    }
    if let [small, large] = &rows[..] {
        println!(
            "peak RSS grows {:.2}× while the data grows {:.1}×",
            large.3.peak_rss_mib / small.3.peak_rss_mib,
            large.1.0 as f64 / small.1.0 as f64
        );
    }
    if let Ok(other) = std::env::var("BENCH_COMPARE_BIN") {
        compare(bin, &other, &ensure_data(bin, &dir, studies), &dir);
    }
    if let Some(n) = std::env::var("BENCH_ENHANCED").ok().and_then(|s| s.parse::<usize>().ok()) {
        enhanced(bin, n, &dir);
    }
    if let Some(n) = std::env::var("BENCH_NIFTI").ok().and_then(|s| s.parse::<usize>().ok()) {
        nifti(bin, n, &dir);
    }
}

/// Ingests `n` phantom studies as DICOM and as their NIfTI export, alternately; prints the
/// medians of images/s and peak RSS.
fn nifti(bin: &str, n: usize, dir: &Path) {
    const KEY: (&str, &str) = ("CINESTREAM_PSEUDONYM_KEY", "bench-nifti-key-0123456789");
    let raw = ensure_data(bin, dir, n);
    let exported = dir.join(format!("nifti-{n}"));
    let data = dir.join(format!("nifti-{n}-source-tables"));
    if !exported.join("done").exists() {
        let _ = std::fs::remove_dir_all(&exported);
        let _ = std::fs::remove_dir_all(&data);
        let (r, d, e) = (raw.to_str().unwrap(), data.to_str().unwrap(), exported.to_str().unwrap());
        let truth = format!("{r}/truth");
        let st = Command::new(bin)
            .args(["-q", "ingest", "--input", r, "--output", d, "--labels", &truth, "--labeller", "phantom"])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new(bin).args(["-q", "export", "--data", d, "--labeller", "phantom", "--out", e]).status().unwrap();
        assert!(st.success());
        std::fs::write(exported.join("done"), b"").unwrap();
    }
    let mut files = Vec::new();
    dicom_files(&raw, &mut files);
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut runs: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
    let mut nifti_images = 0.0;
    // Both with their masks: the DICOM with the phantom's truth masks, the NIfTI with seg_sa.
    let truth = format!("{}/truth", raw.display());
    for i in 0..repeat {
        for (k, input) in [&raw, &exported].into_iter().enumerate() {
            let out = dir.join(format!("out-nifti-{k}"));
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = Command::new(bin);
            cmd.env(KEY.0, KEY.1).args(["-q", "ingest", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
            if k == 0 {
                cmd.args(["--labels", &truth, "--labeller", "phantom"]);
            }
            let m = timed(&mut cmd);
            eprintln!("nifti run {i}: {}: {:.2} s, {:.0} MiB", input.display(), m.seconds, m.peak_rss_mib);
            runs[k].push(m);
            if k == 1 {
                let q = Command::new(bin)
                    .args(["sql", "--data", out.to_str().unwrap(), "--format", "csv", "SELECT count(*) AS n FROM frames"])
                    .output()
                    .unwrap();
                nifti_images =
                    String::from_utf8_lossy(&q.stdout).lines().filter_map(|l| l.trim().parse::<f64>().ok()).next().expect("a frame count");
            }
        }
    }
    for (k, (what, images)) in
        [(format!("DICOM ({} files)", files.len()), files.len() as f64), ("NIfTI export (ukbb layout)".to_string(), nifti_images)]
            .iter()
            .enumerate()
    {
        let s = median(runs[k].iter().map(|m| m.seconds).collect());
        let rss = median(runs[k].iter().map(|m| m.peak_rss_mib).collect());
        println!(
            "{n} studies, {what}: {images:.0} images, median of {repeat}: {:.0} images/s ({s:.2} s), peak RSS {rss:.0} MiB",
            images / s
        );
    }
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Ingests `n` phantom studies as classic files and as their multi-frame conversion,
/// alternately; prints the medians (images/s over the classic image count) and their ratio.
fn enhanced(bin: &str, n: usize, dir: &Path) {
    let raw = ensure_data(bin, dir, n);
    let converted = dir.join(format!("raw-{n}-enhanced"));
    if !converted.join("mapping.json").exists() {
        let _ = std::fs::remove_dir_all(&converted);
        eprintln!("converting {} to multi-frame files in {}", raw.display(), converted.display());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/enhanced_convert.py");
        let out = Command::new("python3").args([script, raw.to_str().unwrap(), converted.to_str().unwrap(), "per_study"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(converted.join("mapping.json"), out.stdout).unwrap();
    }
    let mut files = Vec::new();
    dicom_files(&raw, &mut files);
    let images = files.len() as f64;
    let mut multi = Vec::new();
    dicom_files(&converted, &mut multi);
    floor(&raw, false);
    floor(&converted, false);
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut runs: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
    for i in 0..repeat {
        for (k, input) in [&raw, &converted].into_iter().enumerate() {
            let out = dir.join(format!("out-enhanced-{k}"));
            let _ = std::fs::remove_dir_all(&out);
            let m = timed(Command::new(bin).args(["-q", "ingest", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]));
            eprintln!("enhanced run {i}: {}: {:.2} s, {:.0} MiB", input.display(), m.seconds, m.peak_rss_mib);
            runs[k].push(m);
        }
    }
    let mut rates = Vec::new();
    for (k, what) in [format!("classic ({} files)", files.len()), format!("multi-frame ({} files)", multi.len())].iter().enumerate() {
        let s = median(runs[k].iter().map(|m| m.seconds).collect());
        let rss = median(runs[k].iter().map(|m| m.peak_rss_mib).collect());
        println!("{n} studies, {what}: median of {repeat}: {:.0} images/s ({s:.2} s), peak RSS {rss:.0} MiB", images / s);
        rates.push(images / s);
    }
    println!("multi-frame / classic: {:.3}× the images/s", rates[1] / rates[0]);
}

/// Times this build and `other` alternately on the same data; prints medians and their ratio.
fn compare(bin: &str, other: &str, raw: &Path, dir: &Path) {
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut files = Vec::new();
    dicom_files(raw, &mut files);
    let images = files.len() as f64;
    let mut runs: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
    for i in 0..repeat {
        for (k, b) in [bin, other].into_iter().enumerate() {
            let out = dir.join(format!("out-compare-{k}"));
            let _ = std::fs::remove_dir_all(&out);
            let m = timed(Command::new(b).args(["-q", "ingest", "--input", raw.to_str().unwrap(), "--output", out.to_str().unwrap()]));
            eprintln!("compare run {i}: {b}: {:.2} s, {:.0} MiB", m.seconds, m.peak_rss_mib);
            runs[k].push(m);
        }
    }
    let mut summary = Vec::new();
    for (k, b) in [bin, other].into_iter().enumerate() {
        let s = median(runs[k].iter().map(|m| m.seconds).collect());
        let rss = median(runs[k].iter().map(|m| m.peak_rss_mib).collect());
        println!("{b}: median of {repeat}: {:.0} images/s ({s:.2} s), peak RSS {rss:.0} MiB", images / s);
        summary.push((s, rss));
    }
    println!("this build / other: {:.3}× the throughput, {:.2}× the peak RSS", summary[1].0 / summary[0].0, summary[0].1 / summary[1].1);
}
