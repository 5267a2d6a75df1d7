//! `cinestream schedule`: schedulers on one inbox label every study exactly once (local folders
//! and S3), leases work on the real S3 server (Ceph RGW's `If-Match`), metrics and signals, and
//! bad environments fail clearly without writing anything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::common::*;
use crate::train::pipeline;

/// A phantom of `studies` studies (seed 21) in `dir/raw`, its DICOM folders copied into `inbox`
/// as `<split>/<id>/…` (folder depth 2), and a tiny model trained on 5 other phantom studies;
/// returns the model folder.
pub async fn inbox_and_model(dir: &Path, studies: usize, inbox: &str) -> String {
    let raw = dir.join("raw");
    synth(raw.to_str().unwrap(), studies, 21, "").await;
    upload(&raw, inbox, |rel| rel.ends_with(".dcm")).await;
    let (mraw, mdata) = (dir.join("model-raw"), dir.join("model-data"));
    synth(mraw.to_str().unwrap(), 5, 4, "").await;
    ingest_phantom(mraw.to_str().unwrap(), mdata.to_str().unwrap()).await;
    let p = pipeline(dir, "tiny", 16, 1, 64, 0);
    let (ok, _, err) = cli(&["-q", "train", &p, "--data", mdata.to_str().unwrap()]);
    assert!(ok, "{err}");
    format!("{}/models/tiny/model", mdata.display())
}

/// A pipeline file with one job per `(name, model)`, on `inbox` → `output`.
pub fn schedule_file(dir: &Path, inbox: &str, output: &str, jobs: &[(&str, &str)], extra: &str) -> PathBuf {
    let raw = dir.join("raw");
    let truth: Vec<String> =
        ["train.csv", "validate.csv", "solution.csv"].iter().map(|f| format!("\"{}\"", raw.join(f).display())).collect();
    let mut text = format!("[store]\nmax_retries = 4\nrequest_timeout_s = 20\n\n[schedule]\nlease_ttl_s = 6\n{extra}\n");
    for (name, model) in jobs {
        text += &format!(
            "[[schedule.job]]\nname = \"{name}\"\ncron = \"*/2 * * * * *\"\ninbox = \"{inbox}\"\noutput = \"{output}\"\nquiet_s = 0\ndrop_depth = 2\nmodel = \"{model}\"\nlabeller = \"tiny\"\ntruth = [{}]\nevaluate = true\nbatch = 16\n\n",
            truth.join(", ")
        );
    }
    let p = dir.join(format!("schedule-{}.toml", crate::common::unique("p")));
    std::fs::write(&p, text).unwrap();
    p
}

fn scheduler(file: &Path, once: bool) -> Child {
    scheduler_with(file, once, &[])
}

/// The pseudonym key the tests' schedulers name folders with (a scheduler needs one).
pub const TEST_KEY: (&str, &str) = ("CINESTREAM_PSEUDONYM_KEY", "schedule-test-key-0123456789");

fn scheduler_with(file: &Path, once: bool, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cinestream"));
    c.envs([TEST_KEY]).envs(env.iter().copied());
    c.arg("schedule").arg(file);
    if once {
        c.arg("--once");
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Polls `/metrics` on `port` until its text satisfies `done` (panics after `within`).
fn metrics_when(port: u16, within: Duration, done: impl Fn(&str) -> bool) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "/metrics did not show what was awaited within {within:?}");
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { continue };
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        if done(&text) {
            return text;
        }
    }
}

/// Asks a scheduler to stop, as `docker stop` or Kubernetes would.
fn sigterm(child: &Child) {
    // SAFETY: kill(2) on a child process this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
}

/// The numbers of `schedule --once`'s summary line: listed, done now, studies, done before,
/// held by others, failed, still arriving, takeovers.
fn summary(stdout: &str) -> [usize; 8] {
    let line = stdout.lines().find(|l| l.starts_with("job ")).unwrap_or_else(|| panic!("no summary in {stdout}"));
    let nums: Vec<usize> = line
        .split_once(": ")
        .unwrap()
        .1
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    nums.try_into().unwrap_or_else(|n| panic!("{line}: {n:?}"))
}

/// Duplicates of a frame, mask or QC row, and the studies labelled.
async fn exactly_once(data: &str) -> (i64, i64, i64, i64) {
    let n = |q: String| async move { i64s(&sql(data, &q).await, "n")[0] };
    let dup_frames =
        n("SELECT count(*) AS n FROM (SELECT study_id, slice_index, frame_index FROM frames GROUP BY 1, 2, 3 HAVING count(*) > 1)".into())
            .await;
    let dup_labels = n("SELECT count(*) AS n FROM (SELECT study_id, slice_index, frame_index FROM labels WHERE labeller = 'tiny' GROUP BY 1, 2, 3 HAVING count(*) > 1)".into()).await;
    let dup_qc =
        n("SELECT count(*) AS n FROM (SELECT study_id FROM label_qc WHERE labeller = 'tiny' GROUP BY 1 HAVING count(*) > 1)".into()).await;
    let labelled = n("SELECT count(DISTINCT study_id) AS n FROM labels WHERE labeller = 'tiny'".into()).await;
    (dup_frames, dup_labels, dup_qc, labelled)
}

/// Checks the outcome of schedulers that ran to completion on `studies` studies.
async fn check_all_done(output: &str, state: &str, studies: usize) {
    let (dup_frames, dup_labels, dup_qc, labelled) = exactly_once(output).await;
    eprintln!("duplicates found: {dup_frames} frames, {dup_labels} masks, {dup_qc} QC rows; {labelled} studies labelled");
    assert_eq!((dup_frames, dup_labels, dup_qc), (0, 0, 0), "nothing twice");
    assert_eq!(labelled as usize, studies, "every study labelled");
    let frames = i64s(&sql(output, "SELECT count(*) AS n FROM frames").await, "n")[0];
    let masks = i64s(&sql(output, "SELECT count(*) AS n FROM labels WHERE labeller = 'tiny'").await, "n")[0];
    assert_eq!(frames, masks, "every frame labelled once");
    let st = open(state);
    let objects: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(st.store.list(Some(&st.prefix)))
        .await
        .unwrap()
        .into_iter()
        .map(|m| st.relative(&m.location).to_string())
        .collect();
    let markers = objects.iter().filter(|k| k.starts_with("done/")).count();
    let leases: Vec<&String> = objects.iter().filter(|k| k.starts_with("leases/") && !k.starts_with("leases/_probe")).collect();
    assert_eq!(markers, studies, "one done marker per folder");
    assert!(leases.is_empty(), "no lease left: {leases:?}");
    // A marker records its study's results, the EF error against the truth included.
    let one = objects.iter().find(|k| k.starts_with("done/")).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&st.store.get(&st.child(one)).await.unwrap().bytes().await.unwrap()).unwrap();
    let s = &m["studies"][0];
    // (The tiny model may find no ventricle: then EF is null and its error counts as 100.)
    assert!(s["frames_labelled"].as_u64().unwrap() > 0 && s.get("ef_pct").is_some() && s["ef_error_pct"].is_number(), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_on_one_inbox_label_every_study_exactly_once() {
    let n = sized(6, 50);
    let dir = tempfile::tempdir().unwrap();
    let (inbox, output) = (dir.path().join("inbox").display().to_string(), dir.path().join("data").display().to_string());
    let model = inbox_and_model(dir.path(), n, &inbox).await;
    let file = schedule_file(dir.path(), &inbox, &output, &[("label-new", &model)], "");
    let started = Instant::now();
    let children: Vec<Child> = (0..3).map(|_| scheduler(&file, true)).collect();
    let (mut folders, mut studies, mut takeovers) = (0, 0, 0);
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "scheduler {i}: {stderr}");
        eprintln!("scheduler {i}: {}", stdout.lines().find(|l| l.starts_with("job ")).unwrap());
        let [_, done, s, _, _, failed, _, t] = summary(&stdout);
        assert_eq!(failed, 0);
        folders += done;
        studies += s;
        takeovers += t;
    }
    eprintln!(
        "3 schedulers, {n} studies in {:.0} s: {folders} leases taken and done, {takeovers} takeovers",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(folders, n, "each folder done by exactly one scheduler");
    assert_eq!(studies, n);
    check_all_done(&output, &format!("{output}/_schedule/label-new"), studies).await;

    // A rerun finds everything done and writes nothing.
    let versions = files_under(&dir.path().join("data/labels/_delta_log")).len();
    let out = scheduler(&file, true).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 done now") && stdout.contains(&format!("{n} done before")), "{stdout}");
    assert_eq!(files_under(&dir.path().join("data/labels/_delta_log")).len(), versions);
}

/// What Ceph RGW does with `If-Match`, as object_store sends it, and what the lease probe
/// concludes: the store's own (quoted) ETag is refused, the bare one accepted, a stale one
/// refused, so leases send ETags bare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_on_the_s3_server_and_the_lease_probe() {
    let Some(bucket) = s3_bucket("if_match_on_the_s3_server_and_the_lease_probe") else { return };
    let root = open(&format!("s3://{bucket}/{}", unique("if-match")));
    let path = root.child("x.json");
    let first = root
        .store
        .put_opts(&path, PutPayload::from_static(b"1"), PutOptions { mode: PutMode::Create, ..Default::default() })
        .await
        .unwrap();
    let tag = first.e_tag.clone().unwrap();
    let again = root.store.put_opts(&path, PutPayload::from_static(b"1"), PutOptions { mode: PutMode::Create, ..Default::default() }).await;
    assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "create-only put: {again:?}");
    let update =
        |t: &str| PutOptions { mode: PutMode::Update(UpdateVersion { e_tag: Some(t.to_string()), version: None }), ..Default::default() };
    let quoted = root.store.put_opts(&path, PutPayload::from_static(b"2"), update(&tag)).await;
    let bare = root.store.put_opts(&path, PutPayload::from_static(b"2"), update(tag.trim_matches('"'))).await;
    let stale = root.store.put_opts(&path, PutPayload::from_static(b"3"), update(tag.trim_matches('"'))).await;
    eprintln!(
        "ETag {tag}: If-Match quoted → {}, bare → {}, stale → {}",
        quoted.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        bare.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        stale.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into())
    );
    assert!(matches!(stale, Err(object_store::Error::Precondition { .. })), "a stale ETag must be refused");
    let mode = cinestream::schedule::lease::probe(&root).await.unwrap();
    eprintln!("lease mode on this server: {mode}");
    match (quoted.is_ok(), bare.is_ok()) {
        (true, _) => assert_eq!(mode, cinestream::schedule::lease::Mode::Conditional { bare_etags: false }),
        (false, true) => assert_eq!(mode, cinestream::schedule::lease::Mode::Conditional { bare_etags: true }),
        (false, false) => assert_eq!(mode, cinestream::schedule::lease::Mode::Generations),
    }
}

/// Two schedulers on S3 (leases by `If-Match`), done folders moved out of the inbox; then a
/// long-running scheduler serves /metrics and stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_on_s3_label_once_move_folders_and_serve_metrics() {
    let Some(bucket) = s3_bucket("schedulers_on_s3_label_once_move_folders_and_serve_metrics") else { return };
    let studies = sized(3, 8);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("s3://{bucket}/{}", unique("schedule"));
    let (inbox, output, done) = (format!("{base}/inbox"), format!("{base}/data"), format!("{base}/done"));
    let model = inbox_and_model(dir.path(), studies, &inbox).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let file = schedule_file(dir.path(), &inbox, &output, &[("s3-job", &model)], &format!("metrics_addr = \"127.0.0.1:{port}\"\n"));
    let text = std::fs::read_to_string(&file).unwrap().replace("evaluate = true\n", &format!("evaluate = true\nmove_to = \"{done}\"\n"));
    std::fs::write(&file, text).unwrap();
    let once_file = dir.path().join("once.toml");
    std::fs::write(&once_file, std::fs::read_to_string(&file).unwrap().replace(&format!("metrics_addr = \"127.0.0.1:{port}\"\n"), ""))
        .unwrap();
    let children: Vec<Child> = (0..2).map(|_| scheduler(&once_file, true)).collect();
    let mut folders = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{}", stdout.trim());
        folders += summary(&stdout)[1];
    }
    assert_eq!(folders, studies, "each folder done once");
    check_all_done(&output, &format!("{output}/_schedule/s3-job"), studies).await;
    let moved = open(&done);
    let keys = |loc: cinestream::store::StoreLocation| async move {
        let listed = futures::TryStreamExt::try_collect::<Vec<_>>(loc.store.list(Some(&loc.prefix))).await.unwrap();
        let mut keys: Vec<String> = listed.iter().map(|o| o.location.as_ref()[loc.prefix.as_ref().len() + 1..].to_string()).collect();
        keys.sort();
        keys
    };
    let moved_keys = keys(open(&done)).await;
    let n_left = keys(open(&inbox)).await.len();
    assert!(!moved_keys.is_empty() && n_left == 0, "done folders moved: {} moved, {n_left} left", moved_keys.len());

    // A crash between a folder's copies and deletes leaves it in both places. While its lease is
    // live (the worker that did it is moving it now) a run leaves it alone; once the lease is
    // gone, a run finishes the move, and labels nothing again.
    let name = moved_keys[0].split('/').take(2).collect::<Vec<_>>().join("/");
    let back: Vec<&String> = moved_keys.iter().filter(|k| k.starts_with(&format!("{name}/"))).collect();
    let inbox_loc = open(&inbox);
    for k in &back {
        let bytes = moved.store.get(&moved.child(k)).await.unwrap().bytes().await.unwrap();
        inbox_loc.store.put(&inbox_loc.child(k), PutPayload::from(bytes)).await.unwrap();
    }
    let leases = open(&format!("{output}/_schedule/s3-job")).sub("leases");
    let mode = cinestream::schedule::lease::probe(&leases).await.unwrap();
    let holder = cinestream::schedule::lease::Leases::new(leases, mode, Duration::from_secs(600), "mover".into());
    let tag = cinestream::source::layout::folder_name(TEST_KEY.1.as_bytes(), &name);
    assert!(matches!(holder.take(&tag).await.unwrap(), cinestream::schedule::lease::Taken::Fresh(_)));
    let once = |what: &str| {
        let out = scheduler(&once_file, true).wait_with_output().unwrap();
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(summary(&stdout)[1], 0, "{what}: nothing done again: {stdout}");
    };
    once("lease held");
    assert_eq!(keys(open(&inbox)).await.len(), back.len(), "a folder whose move is under way is left to its worker");
    holder.remove(&tag).await.unwrap();
    once("lease gone");
    assert_eq!(keys(open(&inbox)).await.len(), 0, "an interrupted move is finished");
    assert_eq!(keys(open(&done)).await, moved_keys, "every object moved once");

    // New arrivals outside the Kaggle layout (`late/<n>/<file>.dcm`: grouped by UID, named
    // with the pseudonym key) for a scheduler that keeps running: it labels them at its next
    // time, serves metrics, and exits 0 on SIGTERM.
    let raw2 = dir.path().join("raw2");
    synth(raw2.to_str().unwrap(), 2, 99, "").await;
    for study in 0..2 {
        let folder = raw2.join(if study == 0 { "train/1" } else { "train/2" });
        for (i, f) in files_under(&folder).into_iter().filter(|f| f.extension().is_some_and(|e| e == "dcm")).enumerate() {
            inbox_loc
                .store
                .put(&inbox_loc.child(&format!("late/{study}/{i:05}.dcm")), PutPayload::from(std::fs::read(&f).unwrap()))
                .await
                .unwrap();
        }
    }
    let mut child = scheduler(&file, false);
    let metrics = metrics_when(port, Duration::from_secs(240), |t| t.contains("cinestream_drops_done_total{job=\"s3-job\"} 2\n"));
    eprintln!("{}", metrics.lines().filter(|l| l.starts_with("cinestream_")).collect::<Vec<_>>().join("\n"));
    assert!(metrics.contains("cinestream_last_run_success{job=\"s3-job\"} 1"), "{metrics}");
    assert!(metrics.contains("cinestream_drops_failed_total{job=\"s3-job\"} 0"), "{metrics}");
    sigterm(&child);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "SIGTERM: exit 0 ({status}): {stderr}");
    assert!(stderr.contains("study done"), "one log line per study: {stderr}");
}

/// Bad environments: each fails clearly with exit 1, and writes nothing; a scheduler with a
/// broken job still runs its good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_environments_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox").display().to_string();
    let model = inbox_and_model(dir.path(), 2, &inbox).await;
    let run = |file: &Path, env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cinestream"));
        c.arg("schedule").arg(file).arg("--once").envs([TEST_KEY]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A model that does not load, next to a good job: the good one labels, the bad one fails
    // before taking any folder.
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/models/cinestream_unet.toml"), dir.path().join("broken.toml")).unwrap();
    let data = dir.path().join("data").display().to_string();
    let file = schedule_file(dir.path(), &inbox, &data, &[("good", &model), ("broken", broken.to_str().unwrap())], "");
    // Without a pseudonym key (folders are named by keyed hashes): refused before any job.
    let no_config = dir.path().join("no-config");
    let (code, _, stderr) = run(&file, &[("CINESTREAM_PSEUDONYM_KEY", ""), ("CINESTREAM_CONFIG_DIR", no_config.to_str().unwrap())]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("needs a pseudonym key") && stderr.contains("cinestream key create"), "{stderr}");
    assert!(!Path::new(&data).join("_schedule").exists(), "nothing written without a key");
    let (code, stdout, stderr) = run(&file, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("job `broken` failed") && stderr.contains("broken.onnx"), "{stderr}");
    assert!(stdout.contains("job good: 2 folders listed, 2 done now"), "{stdout}");
    assert!(!Path::new(&data).join("_schedule/broken/done").exists(), "the broken job marked nothing done");
    assert!(
        !Path::new(&data).join("_schedule/broken/leases").read_dir().is_ok_and(|mut d| d.any(|e| e.unwrap().file_name() != "_probe")),
        "and holds no lease"
    );
    // Kept running, the scheduler reports the broken job in /metrics and goes on with the good one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let served = dir.path().join("served.toml");
    std::fs::write(
        &served,
        std::fs::read_to_string(&file).unwrap().replace("[schedule]\n", &format!("[schedule]\nmetrics_addr = \"127.0.0.1:{port}\"\n")),
    )
    .unwrap();
    let mut child = scheduler(&served, false);
    let metrics = metrics_when(port, Duration::from_secs(60), |t| {
        t.contains("cinestream_runs_total{job=\"broken\"} 2") && t.contains("cinestream_runs_total{job=\"good\"} 2")
    });
    assert!(
        metrics.contains("cinestream_last_run_success{job=\"broken\"} 0")
            && metrics.contains("cinestream_last_run_success{job=\"good\"} 1"),
        "{metrics}"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success(), "SIGTERM: exit 0");

    let Some(bucket) = s3_bucket("bad_environments_fail_clearly_and_write_nothing") else { return };
    let s3_out = format!("s3://{bucket}/{}", unique("bad-env"));
    let file = schedule_file(dir.path(), &inbox, &s3_out, &[("s3", &model)], "");
    let secret = "definitely-not-the-secret-42";
    for (what, env) in [
        ("wrong credentials", vec![("AWS_SECRET_ACCESS_KEY", secret)]),
        ("unreachable endpoint", vec![("AWS_ENDPOINT_URL", "http://127.0.0.1:9")]),
    ] {
        let started = Instant::now();
        let (code, _, stderr) = run(&file, &env);
        eprintln!("{what}: exit {code:?} after {:.1} s: {}", started.elapsed().as_secs_f64(), stderr.lines().last().unwrap_or(""));
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(!stderr.contains(secret), "{what}: the secret was printed");
        assert!(stderr.contains("job `s3` failed"), "{what}: {stderr}");
    }
    let missing = schedule_file(dir.path(), &inbox, &format!("s3://no-such-bucket-{}/x", std::process::id()), &[("nobucket", &model)], "");
    let (code, _, stderr) = run(&missing, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("bucket"), "names the bucket: {stderr}");
    let out = open(&s3_out);
    let written = futures::TryStreamExt::try_collect::<Vec<_>>(out.store.list(Some(&out.prefix))).await.unwrap();
    assert!(written.is_empty(), "nothing written: {:?}", written.iter().map(|m| m.location.to_string()).collect::<Vec<_>>());
}
