//! The tables as Delta Lake tables: re-ingest adds nothing, new studies are appended, a changed
//! study is refused or replaced; readers by version; SIGKILL at seeded points then a rerun;
//! concurrent ingests on the S3 server; vacuum; the manifest-format upgrade; other engines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use rand::{Rng, SeedableRng};

use crate::common::*;
use cinestream::ingest;
use cinestream::progress::Quiet;
use cinestream::query::selection::{self, QuerySource};
use cinestream::query::{Session, SessionOptions};
use cinestream::store::StoreLocation;
use cinestream::tables::delta::{self, AsOf};
use cinestream::tables::{self, legacy, maintain};

/// The rows of a table whose first column (study_id / source_study_id) is `study`.
fn of_study<'a>(rows: &'a [String], study: &str) -> Vec<&'a String> {
    rows.iter().filter(|r| r.split('|').next() == Some(study)).collect()
}

fn rows_of<'a>(all: &'a [(String, Vec<String>)], table: &str) -> &'a [String] {
    &all.iter().find(|(t, _)| t == table).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingest_skips_present_appends_new_and_replaces_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, held, data) = (dir.path().join("raw"), dir.path().join("held"), dir.path().join("data"));
    let (raw_s, data_s) = (raw.to_str().unwrap(), data.to_str().unwrap());
    let report = synth(raw_s, 7, 11, "none").await;
    // Two studies arrive later.
    let late: Vec<_> = report.studies.iter().rev().take(2).map(|s| (s.split.clone(), s.study_id.clone())).collect();
    for (split, id) in &late {
        std::fs::create_dir_all(held.join(split)).unwrap();
        std::fs::rename(raw.join(split).join(id), held.join(split).join(id)).unwrap();
    }
    let first = ingest_phantom(raw_s, data_s).await;
    assert_eq!((first.sources_new, first.sources_present.len()), (5, 0));
    let rows1 = all_rows(data_s).await;
    let selection = {
        let session = Session::open(Some(&open(data_s)), &SessionOptions::default()).await.unwrap();
        let q = QuerySource {
            label: "inline".into(),
            sql: "SELECT study_id, slice_index, frame_index FROM frames WHERE frame_index = 0".into(),
        };
        selection::create(&session, &open(data_s), "first", &q, false).await.unwrap()
    };

    // The same input again: nothing added, each study reported as present.
    let again = ingest_phantom(raw_s, data_s).await;
    assert_eq!(again.sources_new, 0);
    assert_eq!(
        again.sources_present.keys().cloned().collect::<BTreeSet<_>>(),
        report.studies[..5].iter().map(|s| s.study_id.clone()).collect()
    );
    assert!(again.sources_present.values().all(|why| why == "same objects"), "{:?}", again.sources_present);
    assert_eq!(again.files_skipped, again.image_files, "every file is accounted as skipped");
    assert!(again.commits.is_empty(), "nothing to commit: {:?}", again.commits);
    assert_eq!(all_rows(data_s).await, rows1);

    // The late studies arrive: only their rows are appended.
    for (split, id) in &late {
        std::fs::rename(held.join(split).join(id), raw.join(split).join(id)).unwrap();
    }
    let third = ingest_phantom(raw_s, data_s).await;
    assert_eq!((third.sources_new, third.sources_present.len()), (2, 5));
    let rows3 = all_rows(data_s).await;
    for ((table, before), (_, after)) in rows1.iter().zip(&rows3) {
        let added: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
        assert!(before.iter().all(|r| after.contains(r)), "{table}: old rows kept");
        assert!(
            added.iter().all(|r| late.iter().any(|(_, id)| r.split('|').next() == Some(id))),
            "{table}: only the late studies' rows are new"
        );
        if table != "curation_log" {
            assert!(!added.is_empty(), "{table}: the late studies' rows were appended");
        }
    }

    // Readers by version: the selection's versions still read the first ingest's tables, and
    // re-selecting there reproduces it byte for byte.
    let old = Session::open(Some(&open(data_s)), &SessionOptions { as_of: selection.as_of(), ..Default::default() }).await.unwrap();
    let n = i64s(&run_sql(&old, "SELECT count(*) AS n FROM frames").await, "n")[0];
    assert_eq!(n as usize, rows_of(&rows1, "frames").len());
    let q =
        QuerySource { label: "inline".into(), sql: "SELECT study_id, slice_index, frame_index FROM frames WHERE frame_index = 0".into() };
    let again_sel = selection::create(&old, &open(data_s), "first_again", &q, false).await.unwrap();
    assert_eq!(again_sel.file.sha256, selection.file.sha256);
    assert_eq!(again_sel.tables, selection.tables);
    let latest = Session::open(Some(&open(data_s)), &SessionOptions::default()).await.unwrap();
    let n = i64s(&run_sql(&latest, "SELECT count(*) AS n FROM frames").await, "n")[0];
    assert_eq!(n as usize, rows_of(&rows3, "frames").len());

    // One study's source changes: refused without --replace, its rows swapped with it.
    let (changed_split, changed) = (&report.studies[1].split, report.studies[1].study_id.clone());
    let file =
        files_under(&raw.join(changed_split).join(&changed)).into_iter().find(|f| f.extension().is_some_and(|e| e == "dcm")).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 64..] {
        *b ^= 0x5a; // pixel data is last: the file still parses, one image differs
    }
    std::fs::write(&file, bytes).unwrap();
    let refused = ingest_phantom(raw_s, data_s).await;
    assert_eq!(refused.sources_refused, vec![changed.clone()]);
    assert_eq!(all_rows(data_s).await, rows3, "a refused study changes nothing");
    let mut cfg = phantom_config(raw_s, data_s);
    cfg.replace = true;
    let replaced = ingest::run(&cfg, Arc::new(Quiet)).await.unwrap();
    assert_eq!(replaced.sources_replaced, vec![changed.clone()]);
    assert_eq!(replaced.sources_present.len(), 6);
    let rows5 = all_rows(data_s).await;
    for ((table, before), (_, after)) in rows3.iter().zip(&rows5) {
        let others = |rows: &[String]| rows.iter().filter(|r| r.split('|').next() != Some(changed.as_str())).cloned().collect::<Vec<_>>();
        assert_eq!(others(before), others(after), "{table}: other studies' rows untouched");
        assert_eq!(of_study(before, &changed).len(), of_study(after, &changed).len(), "{table}: the study's rows replaced one for one");
    }
    let (old_frames, new_frames) = (of_study(rows_of(&rows3, "frames"), &changed), of_study(rows_of(&rows5, "frames"), &changed));
    assert_eq!(new_frames.iter().filter(|r| !old_frames.contains(r)).count(), 1, "exactly the changed image differs");
    // The replace is one commit per table, recorded with its predicate and removed rows.
    let t = delta::open(&open(data_s), "frames", &AsOf::Latest).await.unwrap().unwrap();
    let last = &delta::history(&t, Some(1)).await.unwrap()[0];
    let info = &last.info["cinestream"];
    assert_eq!(
        (info["rows_removed"].as_u64(), info["rows_added"].as_u64()),
        (Some(old_frames.len() as u64), Some(new_frames.len() as u64)),
        "{info}"
    );
    assert!(last.operation_parameters.as_ref().unwrap()["predicate"].as_str().unwrap().contains(&format!("'{changed}'")));

    // The history through the CLI.
    let (ok, out, err) = cli(&["log", "--data", data_s, "frames"]);
    assert!(ok, "{err}");
    assert!(out.contains("WRITE") && out.contains("5 new") && out.contains("2 new"), "{out}");
    assert_eq!(out.lines().count(), 1 + 4, "header + create + three ingests that wrote: {out}");
}

/// The objects under each table folder that no commit references.
async fn orphans(data: &StoreLocation) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for table in tables::TABLES {
        let active: BTreeSet<String> = match delta::open(data, table, &AsOf::Latest).await.unwrap() {
            Some(t) => delta::active_files(&t).unwrap().into_iter().map(|f| f.path).collect(),
            None => BTreeSet::new(),
        };
        let prefix = data.child(table);
        let listed: Vec<_> = data.store.list(Some(&prefix)).try_collect().await.unwrap();
        for m in listed {
            let rel = data.relative(&m.location).strip_prefix(&format!("{table}/")).unwrap().to_string();
            if !rel.starts_with("_delta_log") && !active.contains(&rel) {
                out.insert(format!("{table}/{rel}"));
            }
        }
    }
    out
}

/// Counts per table as cinestream and (when present) deltalake/polars see them.
async fn visible_counts(data: &str) -> BTreeMap<String, (usize, Option<usize>)> {
    let python = python_counts(data);
    let mut out = BTreeMap::new();
    for t in tables::TABLES {
        let n = table_rows(data, t, &[]).await.len();
        out.insert(t.to_string(), (n, python.as_ref().map(|p| p[t]["polars_rows"].as_u64().unwrap() as usize)));
    }
    out
}

/// `scripts/read_tables.py` on a data prefix; `None` (said) when the Python packages are absent.
fn python_counts(data: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new("python3").args(["scripts/read_tables.py", data]).output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") && std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err() {
            eprintln!("SKIPPED the Python readers: pip install deltalake polars duckdb pandas ({err})");
            return None;
        }
        panic!("scripts/read_tables.py {data}: {err}");
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// SIGKILLs `points` CLI ingests at seeded random times, checks what readers see, reruns each,
/// and holds the tables against an uninterrupted run; then vacuums exactly the orphans.
async fn kill_and_rerun(raw: &str, data_of: impl Fn(usize) -> String, seed: u64, points: usize) {
    let clean = data_of(0);
    let started = Instant::now();
    let (ok, _, err) = cli(&phantom_ingest_args(raw, &clean).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let clean_time = started.elapsed();
    let want = all_rows(&clean).await;
    let full: BTreeMap<String, usize> = want.iter().map(|(t, r)| (t.clone(), r.len())).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut orphaned_total = 0;
    let mut hidden_points = 0;
    for i in 1..=points {
        let data = data_of(i);
        let at = Duration::from_secs_f64(rng.random_range(0.05..1.05) * clean_time.as_secs_f64());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
            .args(phantom_ingest_args(raw, &data))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL
        child.wait().unwrap();
        let seen = visible_counts(&data).await;
        // cinestream sees the run in every table or in none (tables::publish); an engine reading
        // one table at a time sees each table's commit whole or not at all.
        let committed: Vec<&String> =
            seen.iter().filter(|(t, (_, py))| py.is_some_and(|p| p == full[*t] && p > 0)).map(|(t, _)| t).collect();
        println!(
            "kill point {i}: SIGKILL after {:.3} s of a {:.3} s run{}; tables committed before the kill: {committed:?}",
            at.as_secs_f64(),
            clean_time.as_secs_f64(),
            if finished { " (it had finished)" } else { "" }
        );
        let ours: BTreeSet<bool> = seen.iter().map(|(t, (n, _))| *n == full[t]).collect();
        let none = seen.values().all(|(n, _)| *n == 0);
        if none && !committed.is_empty() {
            hidden_points += 1;
            let (ok, log, err) = cli(&["log", "--data", &data, committed[0].as_str()]);
            assert!(ok && log.contains("[unpublished"), "kill point {i}: `log` marks the hidden commit: {log}{err}");
        }
        assert!(none || ours == BTreeSet::from([true]), "kill point {i}: cinestream shows part of a run: {seen:?} (full: {full:?})");
        for (t, (_, py)) in &seen {
            assert!(py.is_none_or(|p| p == 0 || p == full[t]), "kill point {i}: polars sees {py:?} rows of {t} (full: {})", full[t]);
        }
        let (ok, _, err) = cli(&phantom_ingest_args(raw, &data).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "kill point {i}: the rerun failed: {err}");
        assert_eq!(all_rows(&data).await, want, "kill point {i}: the tables differ from an uninterrupted run");
        let loc = open(&data);
        let expected = orphans(&loc).await;
        orphaned_total += expected.len();
        let dry = maintain::vacuum(&loc, chrono::Duration::zero(), true).await.unwrap();
        let listed: BTreeSet<String> = dry.files.values().flatten().cloned().collect();
        assert_eq!(listed, expected, "kill point {i}: vacuum's dry run lists exactly the orphaned files");
        maintain::vacuum(&loc, chrono::Duration::zero(), false).await.unwrap();
        assert!(orphans(&loc).await.is_empty(), "kill point {i}: vacuum removed the orphans");
        assert_eq!(all_rows(&data).await, want, "kill point {i}: vacuum kept every committed row");
    }
    println!(
        "{points} kill points: {orphaned_total} orphaned files found and vacuumed; at {hidden_points} the killed run had committed tables that cinestream kept hidden (unpublished)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_rerun_on_file_urls() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    synth(raw.to_str().unwrap(), 3, 21, "broken_files").await;
    let base = dir.path().to_path_buf();
    kill_and_rerun(raw.to_str().unwrap(), |i| base.join(format!("data{i}")).to_str().unwrap().to_string(), 20261201, sized(4, 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_rerun_on_s3() {
    let Some(bucket) = s3_bucket("sigkill_then_rerun_on_s3") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    synth(raw.to_str().unwrap(), 3, 22, "none").await;
    let p = unique("kills");
    kill_and_rerun(raw.to_str().unwrap(), |i| format!("s3://{bucket}/{p}/data{i}"), 20261202, sized(3, 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_of_disjoint_studies_both_commit_on_s3() {
    let Some(bucket) = s3_bucket("concurrent_ingests_of_disjoint_studies_both_commit_on_s3") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let report = synth(raw.to_str().unwrap(), 6, 31, "none").await;
    // Two inputs with three studies each (the truth CSVs and masks are the whole phantom's).
    let inputs: Vec<_> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    for (i, s) in report.studies.iter().enumerate() {
        let to = inputs[i % 2].join(&s.split);
        std::fs::create_dir_all(&to).unwrap();
        copy_dir(&raw.join(&s.split).join(&s.study_id), &to.join(&s.study_id));
    }
    let out = format!("s3://{bucket}/{}/data", unique("concurrent"));
    let raw_s = raw.to_str().unwrap();
    let children: Vec<_> = inputs
        .iter()
        .map(|input| {
            let mut args = phantom_ingest_args(raw_s, &out);
            args[2] = input.to_str().unwrap().to_string();
            std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let sources = table_rows(&out, "sources", RUN_COLUMNS).await;
    let ids: Vec<&str> = sources.iter().map(|r| r.split('|').next().unwrap()).collect();
    let mut want: Vec<&str> = report.studies.iter().map(|s| s.study_id.as_str()).collect();
    want.sort();
    assert_eq!(ids, want, "both sets, once each");
    let images: usize = report.studies.iter().map(|s| s.n_slices * s.n_frames).sum();
    assert_eq!(table_rows(&out, "frames", &[]).await.len(), images);
    assert_eq!(table_rows(&out, "labels", &[]).await.len(), images);
    let t = delta::open(&open(&out), "frames", &AsOf::Latest).await.unwrap().unwrap();
    let writes = delta::history(&t, None).await.unwrap().iter().filter(|c| c.operation.as_deref() == Some("WRITE")).count();
    assert_eq!(writes, 2, "one append per ingest");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_engines_read_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    synth(raw.to_str().unwrap(), 3, 41, "broken_files").await;
    ingest_phantom(raw.to_str().unwrap(), data.to_str().unwrap()).await;
    let Some(seen) = python_counts(data.to_str().unwrap()) else { return };
    for t in tables::TABLES {
        let n = table_rows(data.to_str().unwrap(), t, &[]).await.len() as u64;
        assert!(n > 0, "{t} has rows");
        let s = &seen[t];
        assert_eq!(
            (s["pandas_rows"].as_u64(), s["polars_rows"].as_u64(), s["duckdb_rows"].as_u64()),
            (Some(n), Some(n), Some(n)),
            "{t}: {s}"
        );
        let ours: Vec<String> = tables::schema(t).unwrap().fields().iter().map(|f| f.name().clone()).collect();
        let cols: Vec<String> = serde_json::from_value(s["columns"].clone()).unwrap();
        let pl: Vec<String> = serde_json::from_value(s["polars_columns"].clone()).unwrap();
        assert_eq!((&cols, &pl), (&ours, &ours), "{t}: schema");
    }
    // The README's examples give what cinestream gives.
    let b = sql(data.to_str().unwrap(), "SELECT problem, count(*) AS n FROM curation_log GROUP BY problem").await;
    let ours: BTreeMap<String, i64> = strs(&b, "problem").into_iter().map(Option::unwrap).zip(i64s(&b, "n")).collect();
    let readme = &seen["readme"];
    assert_eq!(readme["studies"].as_u64(), Some(table_rows(data.to_str().unwrap(), "studies", &[]).await.len() as u64));
    for engine in ["pandas_problems", "duckdb_problems"] {
        let theirs: BTreeMap<String, i64> = serde_json::from_value(readme[engine].clone()).unwrap();
        assert_eq!(theirs, ours, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_prefixes_are_refused_then_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, new, old) = (dir.path().join("raw"), dir.path().join("new"), dir.path().join("old"));
    let (raw_s, new_s, old_s) = (raw.to_str().unwrap(), new.to_str().unwrap(), old.to_str().unwrap());
    synth(raw_s, 3, 51, "broken_files").await;
    ingest_phantom(raw_s, new_s).await;
    // The same files as the manifest format wrote them: under <table>/, listed in _manifest/.
    let (from, to) = (open(new_s), open(old_s));
    let mut manifest_tables = BTreeMap::new();
    for table in ["frames", "labels", "studies", "curation_log"] {
        let t = delta::open(&from, table, &AsOf::Latest).await.unwrap().unwrap();
        let mut files = Vec::new();
        for f in delta::active_files(&t).unwrap() {
            let bytes = from.store.get(&from.child(&format!("{table}/{}", f.path))).await.unwrap().bytes().await.unwrap();
            to.store.put(&to.child(&format!("{table}/{}", f.path)), bytes.clone().into()).await.unwrap();
            use sha2::Digest;
            files.push(serde_json::json!({ "path": format!("{table}/{}", f.path), "rows": f.rows.unwrap(), "bytes": bytes.len(), "sha256": hex::encode(sha2::Sha256::digest(&bytes)) }));
        }
        manifest_tables.insert(table, serde_json::json!({ "schema_version": 1, "files": files }));
    }
    let m = serde_json::json!({ "format": "cinestream-manifest-v1", "run_id": "0123456789ab", "created": "2026-11-30T10:00:00.000Z", "command": "ingest", "cinestream_version": "0.1.0", "tables": manifest_tables, "summary": {}, "config": {} });
    to.store.put(&to.child("_manifest/20261130T100000.000Z-0123456789ab.json"), serde_json::to_vec(&m).unwrap().into()).await.unwrap();

    let (ok, _, err) = cli(&["sql", "--data", old_s, "SELECT count(*) FROM frames"]);
    assert!(!ok && err.contains(&format!("cinestream upgrade --data {}", to.url())), "refused with how to fix: {err}");
    let (ok, _, err) = cli(&phantom_ingest_args(raw_s, old_s).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("cinestream upgrade"), "ingest refuses it too: {err}");
    let (ok, out, err) = cli(&["upgrade", "--data", old_s]);
    assert!(ok, "{err}");
    assert!(out.contains("upgraded 1 manifests") && out.contains("3 source studies"), "{out}");
    for table in ["frames", "labels", "studies", "curation_log"] {
        assert_eq!(table_rows(old_s, table, &[]).await, table_rows(new_s, table, &[]).await, "{table}");
    }
    // Re-ingesting the same input adds nothing: the studies are known (fingerprint unknown).
    let again = ingest_phantom(raw_s, old_s).await;
    assert_eq!((again.sources_new, again.sources_present.len()), (0, 3), "{:?}", again.sources_present);
    assert!(again.sources_present.values().all(|w| w.contains("upgraded")));
    assert_eq!(table_rows(old_s, "frames", &[]).await, table_rows(new_s, "frames", &[]).await);
    // Upgrading again changes nothing.
    let report = legacy::upgrade(&to, &Default::default()).await.unwrap();
    assert_eq!(report.already.len(), 5, "{report:?}");
    assert_eq!(table_rows(old_s, "sources", RUN_COLUMNS).await.len(), 3);
    // A checksum that does not match is refused.
    let bad = dir.path().join("bad");
    copy_dir(&old.join("frames"), &bad.join("frames"));
    let mut m2 = m.clone();
    m2["tables"]["frames"]["files"][0]["sha256"] = "00".repeat(32).into();
    m2["tables"] = serde_json::json!({ "frames": m2["tables"]["frames"] });
    open(bad.to_str().unwrap())
        .store
        .put(&open(bad.to_str().unwrap()).child("_manifest/x.json"), serde_json::to_vec(&m2).unwrap().into())
        .await
        .unwrap();
    std::fs::remove_dir_all(bad.join("frames/_delta_log")).ok();
    let (ok, _, err) = cli(&["upgrade", "--data", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("SHA-256"), "{err}");
}

/// `studies` as cinestream wrote it before the curated grid's geometry columns (schema 2).
fn studies_schema_2() -> arrow::datatypes::SchemaRef {
    let full = tables::STUDIES.schema();
    // Schema 2 ended before the geometry columns (schema 3), which came before the dataset's ED/ES (4).
    let n = full.index_of(tables::schemas::STUDY_GEOMETRY[0].0).unwrap();
    Arc::new(arrow::datatypes::Schema::new(full.fields()[..n].to_vec()))
}

static STUDIES_2: cinestream::tables::spec::TableSpec =
    cinestream::tables::spec::TableSpec { schema_fn: studies_schema_2, ..tables::STUDIES };

/// A prefix whose `studies` an earlier cinestream wrote (no geometry columns): readers read it,
/// writers refuse it and say to upgrade, `upgrade` adds the columns (null in the old rows), and
/// ingest then works on it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_an_earlier_schema_are_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, new, old) = (dir.path().join("raw"), dir.path().join("new"), dir.path().join("old"));
    let (raw_s, new_s, old_s) = (raw.to_str().unwrap(), new.to_str().unwrap(), old.to_str().unwrap());
    synth(raw_s, 3, 52, "none").await;
    ingest_phantom(raw_s, new_s).await;
    copy_dir(&new, &old);
    // Rewrite `studies` as schema 2: the same rows without the geometry columns.
    std::fs::remove_dir_all(old.join("studies")).unwrap();
    let (from, to) = (open(new_s), open(old_s));
    let t = delta::open(&from, "studies", &AsOf::Latest).await.unwrap().unwrap();
    let paths: Vec<_> = delta::active_files(&t).unwrap().iter().map(|f| from.child(&format!("studies/{}", f.path))).collect();
    let mut w = cinestream::tables::writer::TableWriter::new(&to, &STUDIES_2, "schema2", &Default::default());
    for b in cinestream::tables::reader::read_objects(&from.store, &paths, None).await.unwrap() {
        let n = studies_schema_2().fields().len();
        w.write(arrow::array::RecordBatch::try_new(studies_schema_2(), b.columns()[..n].to_vec()).unwrap()).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    let mut t2 = delta::open_or_create(&to, "studies", &studies_schema_2(), tables::STATS_COLUMNS, Default::default()).await.unwrap();
    let operation = deltalake_core::protocol::DeltaOperation::Write {
        mode: deltalake_core::protocol::SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    delta::commit(
        &mut t2,
        delta::CommitSpec { app_id: "schema-2-writer".into(), adds: files, removes: vec![], operation, info: Default::default() },
    )
    .await
    .unwrap();

    // Readers need no upgrade: the new columns read as null.
    let nulls = "SELECT count(*) AS n FROM studies WHERE origin_x_mm IS NULL AND slice_direction_z IS NULL";
    assert_eq!(i64s(&sql(old_s, nulls).await, "n"), vec![3]);
    // Writers refuse, saying how to fix it.
    let (ok, _, err) = cli(&phantom_ingest_args(raw_s, old_s).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("cinestream upgrade") && err.contains("origin_x_mm"), "{err}");
    let (ok, out, err) = cli(&["upgrade", "--data", old_s]);
    assert!(ok, "{err}");
    assert!(out.contains("studies") && out.contains("columns added") && out.contains("slice_direction_z"), "{out}");
    let t3 = delta::open(&to, "studies", &AsOf::Latest).await.unwrap().unwrap();
    let names: Vec<String> = delta::arrow_schema(&t3).unwrap().fields().iter().map(|f| f.name().clone()).collect();
    let ours: Vec<String> = tables::STUDIES.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ours, "the Delta schema is this version's");
    // Ingest works again; the studies are known, so nothing is rewritten and the old rows keep
    // null geometry, while the rest of the table is unchanged.
    let again = ingest_phantom(raw_s, old_s).await;
    assert_eq!((again.sources_new, again.sources_present.len()), (0, 3));
    assert_eq!(i64s(&sql(old_s, nulls).await, "n"), vec![3]);
    let skip: Vec<&str> = tables::schemas::STUDY_GEOMETRY.iter().map(|(c, _)| *c).collect();
    assert_eq!(table_rows(old_s, "studies", &skip).await, table_rows(new_s, "studies", &skip).await);
    // Upgrading again changes nothing.
    let (ok, out, _) = cli(&["upgrade", "--data", old_s]);
    assert!(ok && out.contains("every table has this version's columns"), "{out}");
}
