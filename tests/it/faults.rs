//! A flaky network between cinestream and the S3 server: a fault-injecting proxy returns 500 and
//! 503, resets connections (before a request reaches the server, and after, losing its reply)
//! and stalls requests past the client's timeout, on a seeded share of requests. Ingest and
//! labelling through it must write exactly what they write without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;
use crate::train::pipeline;

/// What the proxy did, by kind.
#[derive(Default, Debug)]
pub struct FaultCounts {
    pub requests: AtomicU64,
    pub e500: AtomicU64,
    pub e503: AtomicU64,
    pub reset_before: AtomicU64,
    pub reset_after: AtomicU64,
    pub stalled: AtomicU64,
}

impl FaultCounts {
    pub fn faults(&self) -> u64 {
        [&self.e500, &self.e503, &self.reset_before, &self.reset_after, &self.stalled].iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::SeqCst);
        format!(
            "{} requests, {} faults ({:.1}%): {} × 500, {} × 503, {} resets before the server, {} resets after it (reply lost), {} stalls past the timeout",
            g(&self.requests),
            self.faults(),
            100.0 * self.faults() as f64 / g(&self.requests).max(1) as f64,
            g(&self.e500),
            g(&self.e503),
            g(&self.reset_before),
            g(&self.reset_after),
            g(&self.stalled)
        )
    }
}

/// Which fault a request meets (0 500, 1 503, 2 reset before the server, 3 reset after it,
/// 4 stall), decided from its bytes and its number.
type Rule = Arc<dyn Fn(&[u8], u64) -> Option<u8> + Send + Sync>;

/// A proxy to `upstream` (host:port) that faults a `rate` share of requests, seeded. One request
/// per connection (it asks both sides to close), so every request meets its own fate. Returns
/// the proxy's `http://` endpoint.
pub async fn fault_proxy(upstream: String, rate: f64, seed: u64, stall: Duration, counts: Arc<FaultCounts>) -> String {
    let rule: Rule = Arc::new(move |_, i| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if rng.random::<f64>() < rate { Some(rng.random_range(0..5u8)) } else { None }
    });
    proxy(upstream, rule, stall, counts).await
}

/// A proxy that answers every read of a table's data file (a GET of a `.parquet` object outside
/// `_delta_log/`) with 503 SlowDown and passes everything else: the tables open, and the read
/// fails in the middle.
pub async fn data_reads_fail_proxy(upstream: String, counts: Arc<FaultCounts>) -> String {
    let rule: Rule = Arc::new(|request, _| {
        let line = request.split(|b| *b == b'\n').next().map(String::from_utf8_lossy).unwrap_or_default();
        (line.starts_with("GET ") && line.contains(".parquet") && !line.contains("_delta_log")).then_some(1)
    });
    proxy(upstream, rule, Duration::ZERO, counts).await
}

async fn proxy(upstream: String, rule: Rule, stall: Duration, counts: Arc<FaultCounts>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { continue };
            let (upstream, counts, n, rule) = (upstream.clone(), counts.clone(), n.clone(), rule.clone());
            tokio::spawn(async move {
                let i = n.fetch_add(1, Ordering::SeqCst);
                let _ = serve_one(client, &upstream, |request| rule(request, i), stall, &counts).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Reads an HTTP request (head and a Content-Length body).
async fn read_request(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let k = s.read(&mut chunk).await?;
        if k == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let k = s.read(&mut chunk).await?;
        if k == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..k]);
    }
    // Ask the server to close after its reply, so the reply ends at EOF.
    let mut lines: Vec<&str> = head.trim_end().split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    let mut out = (lines.join("\r\n") + "\r\n\r\n").into_bytes();
    out.extend_from_slice(&buf[head_end..]);
    Ok(Some(out))
}

async fn reset(s: TcpStream) {
    // Linger 0: the close sends a reset (and does not block).
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn serve_one(
    mut client: TcpStream,
    upstream: &str,
    rule: impl Fn(&[u8]) -> Option<u8>,
    stall: Duration,
    counts: &FaultCounts,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else { return Ok(()) };
    let fault = rule(&request);
    counts.requests.fetch_add(1, Ordering::SeqCst);
    let reply = |status: &str, body: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    match fault {
        Some(0) => {
            counts.e500.fetch_add(1, Ordering::SeqCst);
            client
                .write_all(
                    reply("500 Internal Server Error", "<Error><Code>InternalError</Code><Message>injected</Message></Error>").as_bytes(),
                )
                .await?;
            return client.shutdown().await;
        }
        Some(1) => {
            counts.e503.fetch_add(1, Ordering::SeqCst);
            client
                .write_all(reply("503 Service Unavailable", "<Error><Code>SlowDown</Code><Message>injected</Message></Error>").as_bytes())
                .await?;
            return client.shutdown().await;
        }
        Some(2) => {
            counts.reset_before.fetch_add(1, Ordering::SeqCst);
            reset(client).await;
            return Ok(());
        }
        Some(4) => {
            // Past the client's timeout, then the request goes on (it may still be applied).
            counts.stalled.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(stall).await;
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    if fault == Some(3) {
        counts.reset_after.fetch_add(1, Ordering::SeqCst);
        reset(client).await;
        return Ok(());
    }
    client.write_all(&response).await?;
    client.shutdown().await
}

fn run_cli(args: &[&str], endpoint: Option<&str>) -> String {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"));
    c.args(args);
    if let Some(e) = endpoint {
        c.env("AWS_ENDPOINT_URL", e);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{args:?} via {endpoint:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_labelling_through_a_faulty_network_write_what_a_clean_run_writes() {
    let Some(bucket) = s3_bucket("ingest_and_labelling_through_a_faulty_network_write_what_a_clean_run_writes") else { return };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let upstream = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    synth(raw.to_str().unwrap(), sized(4, 6), 17, "missing_time_point,rotated_90,broken_files,repeated_slice").await;
    let base = format!("s3://{bucket}/{}", unique("faults"));
    upload(&raw, &format!("{base}/raw"), |_| true).await;
    // A tiny model, trained locally on the clean data.
    let local = dir.path().join("local");
    ingest_phantom(raw.to_str().unwrap(), local.to_str().unwrap()).await;
    let p = pipeline(dir.path(), "tiny", 16, 1, 64, 0);
    run_cli(&["-q", "train", &p, "--data", local.to_str().unwrap()], None);
    let model = format!("{}/models/tiny/model", local.display());

    let counts = Arc::new(FaultCounts::default());
    let proxy = fault_proxy(upstream, 0.15, 7, Duration::from_secs(4), counts.clone()).await;
    let settings = dir.path().join("store.toml");
    let run = |name: &str, endpoint: Option<&str>| {
        let out = format!("{base}/{name}");
        let mut args = phantom_ingest_args(&format!("{base}/raw"), &out);
        let ingest_file = dir.path().join("ingest.toml");
        std::fs::write(
            &ingest_file,
            format!("{}\n[ingest]\ninput = \"{base}/raw\"\noutput = \"{out}\"\n", std::fs::read_to_string(&settings).unwrap()),
        )
        .unwrap();
        args.extend(["--pipeline".into(), ingest_file.to_str().unwrap().into(), "-q".into()]);
        run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), endpoint);
        std::fs::write(
            dir.path().join("label.toml"),
            format!(
                "{}\n[label]\ndata = \"{out}\"\nmodel = \"{model}\"\nlabeller = \"tiny\"\n",
                std::fs::read_to_string(&settings).unwrap()
            ),
        )
        .unwrap();
        run_cli(&["-q", "label", "--pipeline", dir.path().join("label.toml").to_str().unwrap()], endpoint);
        out
    };
    // Many quick retries, and a timeout the stalls exceed.
    std::fs::write(
        &settings,
        "[store]\nmax_retries = 12\ninitial_backoff_ms = 20\nmax_backoff_s = 0.5\nrequest_timeout_s = 2\nretry_timeout_s = 120\n",
    )
    .unwrap();
    let clean = run("clean", None);
    let faulty = run("faulty", Some(&proxy));
    eprintln!("fault proxy: {}", counts.line());
    assert!(
        counts.faults() as f64 >= 0.10 * counts.requests.load(Ordering::SeqCst) as f64,
        "at least 10% of requests faulted: {}",
        counts.line()
    );
    for kind in [&counts.e500, &counts.e503, &counts.reset_before, &counts.reset_after, &counts.stalled] {
        assert!(kind.load(Ordering::SeqCst) > 0, "every kind of fault happened: {}", counts.line());
    }
    for table in ["frames", "labels", "studies", "curation_log", "sources", "label_qc"] {
        let skip: &[&str] = &["run_id", "ingested_at"];
        let (a, b) = (table_rows(&clean, table, skip).await, table_rows(&faulty, table, skip).await);
        assert!(!a.is_empty(), "{table}");
        assert_eq!(a.len(), b.len(), "{table}: same number of rows");
        assert!(a == b, "{table}: the same rows");
    }
}

/// A storage failure in the middle of a read — after the tables opened, while DataFusion and the
/// Parquet reader fetch data files — stops `sql` and `label` with exit status 75 ("run again
/// later"), as a failure at open does, and the same commands pass without the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_in_the_middle_of_a_read_exits_75() {
    let test = "a_storage_failure_in_the_middle_of_a_read_exits_75";
    let Some(bucket) = s3_bucket(test) else { return };
    let Some(()) = crate::label_onnx::onnx_tools(test) else { return };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let upstream = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    synth(raw.to_str().unwrap(), 2, 23, "none").await;
    let data = format!("s3://{bucket}/{}", unique("midread"));
    ingest_phantom(raw.to_str().unwrap(), &data).await;
    let model = dir.path().join("levels.onnx");
    crate::label_onnx::level_model(&model, "nchw");
    std::fs::write(
        dir.path().join("levels.toml"),
        crate::label_onnx::contract("nchw", "{ kind = \"pad_multiple\", multiple = 16 }", false),
    )
    .unwrap();
    // Few, quick retries: the failure is permanent for this test.
    let store = "[store]\nmax_retries = 1\ninitial_backoff_ms = 10\nmax_backoff_s = 0.1\nretry_timeout_s = 5\n";
    let settings = dir.path().join("store.toml");
    std::fs::write(&settings, store).unwrap();
    let label_file = dir.path().join("label.toml");
    std::fs::write(&label_file, format!("{store}[label]\ndata = \"{data}\"\nmodel = \"{}\"\nlabeller = \"levels\"\n", model.display()))
        .unwrap();
    let sql_args =
        ["sql", "--data", &data, "--pipeline", settings.to_str().unwrap(), "SELECT count(*) AS n, sum(lv_pixels) AS lv FROM labels"];
    let label_args = ["-q", "label", "--pipeline", label_file.to_str().unwrap()];
    let counts = Arc::new(FaultCounts::default());
    let proxy = data_reads_fail_proxy(upstream, counts.clone()).await;
    for args in [&sql_args[..], &label_args[..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream")).args(args).env("AWS_ENDPOINT_URL", &proxy).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{args:?} with failing data reads: {err}");
        assert!(err.contains("run the same command again"), "{args:?}: {err}");
    }
    assert!(counts.e503.load(Ordering::SeqCst) > 0, "the proxy failed data reads: {}", counts.line());
    // Without the fault both pass: the failure was the network's.
    let rows = run_cli(&sql_args, None);
    assert!(rows.lines().count() > 1, "{rows}");
    run_cli(&label_args, None);
}
