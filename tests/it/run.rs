//! `cinestream run`: every shipped [run] pipeline checks out; steps run in order with their
//! variables; a failing step stops the run, names itself and how to resume, and `--from` resumes.

use crate::common::*;

#[test]
fn every_shipped_run_pipeline_checks_out() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "toml") || !text.contains("[run]") {
            continue;
        }
        let (ok, out, err) = cli(&["run", path.to_str().unwrap(), "--dry-run"]);
        assert!(ok, "{}: {err}", path.display());
        let steps = text.matches("[[run.step]]").count();
        assert_eq!(out.lines().filter(|l| l.trim_start().starts_with("cinestream ")).count(), steps, "{out}");
        assert!(!out.contains('{'), "every variable filled in: {out}");
        checked += 1;
    }
    assert!(checked >= 3, "quickstart, kaggle and transfer-7t at least ({checked})");
    // Each pipeline's own saved queries load beside the shipped ones (a parameter declared by
    // both with another default is refused, which only a real step would find otherwise).
    let mut folders = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let queries = entry.unwrap().path().join("queries");
        if queries.is_dir() {
            let (ok, _, err) = cli(&["sql", "--queries", queries.to_str().unwrap(), "SELECT 1 AS one"]);
            assert!(ok, "{}: {err}", queries.display());
            folders += 1;
        }
    }
    assert!(folders >= 2, "quickstart's and the phantom study's queries ({folders})");
}

#[test]
fn a_run_stops_at_a_failing_step_and_resumes_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        r#"[run]
work = "unused"
vars = { query = "SELECT count(*) AS n FROM nope" }
[[run.step]]
name = "phantom"
args = ["synth", "--out", "{work}/phantom", "--studies", "2", "--seed", "3"]
[[run.step]]
name = "ingest"
args = ["ingest", "--input", "{work}/phantom", "--output", "{work}/data"]
[[run.step]]
name = "count"
args = ["sql", "--data", "{work}/data", "--format", "csv", "{query}"]
"#,
    )
    .unwrap();
    let work = dir.path().join("w");
    let (f, w) = (file.to_str().unwrap(), work.to_str().unwrap());
    let (ok, _, err) = cli(&["run", f, "--work", w]);
    assert!(!ok);
    assert!(err.contains("step 3 `count` failed") && err.contains("--from 3") && err.contains("nope"), "{err}");
    assert!(work.join("data/frames/_delta_log").exists(), "the steps before ran");
    let (ok, out, err) = cli(&["run", f, "--work", w, "--from", "3", "--set", "query=SELECT count(DISTINCT study_id) AS n FROM frames"]);
    assert!(ok, "{err}");
    assert!(out.contains("n\n2"), "{out}");
    assert!(!err.contains("step 1/3") && err.contains("step 3/3"), "only step 3 ran: {err}");
    // Mistakes are found before anything runs.
    let (ok, _, err) = cli(&["run", f, "--work", w, "--set", "colour=red"]);
    assert!(!ok && err.contains("no variable `colour`"), "{err}");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("\"--studies\", \"2\"", "\"--studdies\", \"2\"")).unwrap();
    let (ok, _, err) = cli(&["run", f, "--work", &dir.path().join("w2").display().to_string()]);
    assert!(!ok && err.contains("step 1 `phantom`") && err.contains("--studdies"), "{err}");
    assert!(!dir.path().join("w2").exists(), "nothing ran");
}
