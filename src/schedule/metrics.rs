//! The scheduler's counters, served as Prometheus text on `/metrics`, and `/healthz`.
//!
//! A minimal HTTP/1.1 responder on a tokio listener: `GET /metrics`, `GET /healthz`, 404
//! otherwise, one response per connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters of one job.
#[derive(Debug, Clone, Default)]
pub struct JobMetrics {
    pub studies_done: u64,
    /// Drops skipped because another worker held their lease.
    pub drops_busy: u64,
    pub drops_done: u64,
    pub drops_failed: u64,
    /// Drops that changed after they were done (left alone, reported).
    pub drops_changed: u64,
    pub in_flight: u64,
    /// Ready drops not yet done, and the age of the oldest of them (seconds).
    pub queue: u64,
    pub queue_lag_s: f64,
    /// Drops still arriving (inside their quiet time).
    pub waiting: u64,
    pub lease_takeovers: u64,
    pub leases_lost: u64,
    /// Unix time of the last run's end, and whether it succeeded.
    pub last_run: f64,
    pub last_run_ok: bool,
    pub runs: u64,
}

/// Metrics of every job, shared by the job tasks and the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<BTreeMap<String, JobMetrics>>>,
}

impl Metrics {
    /// Changes one job's counters.
    pub fn update(&self, job: &str, f: impl FnOnce(&mut JobMetrics)) {
        let mut all = self.inner.lock().expect("metrics");
        f(all.entry(job.to_string()).or_default());
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let all = self.inner.lock().expect("metrics").clone();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&JobMetrics) -> f64| {
            out += &format!("# HELP cinestream_{name} {help}\n# TYPE cinestream_{name} {kind}\n");
            for (job, m) in &all {
                out += &format!("cinestream_{name}{{job=\"{}\"}} {}\n", job.replace('\\', "\\\\").replace('"', "\\\""), value(m));
            }
        };
        family("studies_done_total", "counter", "Studies labelled and committed.", &|m| m.studies_done as f64);
        family("drops_done_total", "counter", "Inbox drops done (marker written).", &|m| m.drops_done as f64);
        family("drops_failed_total", "counter", "Inbox drop attempts that failed (retried at the next run).", &|m| m.drops_failed as f64);
        family("drops_skipped_busy_total", "counter", "Drops skipped because another worker held their lease.", &|m| m.drops_busy as f64);
        family("drops_changed_total", "counter", "Done drops whose objects changed afterwards (left alone).", &|m| m.drops_changed as f64);
        family("drops_in_flight", "gauge", "Drops being worked on now.", &|m| m.in_flight as f64);
        family("queue_drops", "gauge", "Ready drops not yet done at the last run.", &|m| m.queue as f64);
        family("queue_lag_seconds", "gauge", "Age of the oldest ready drop not yet done at the last run.", &|m| m.queue_lag_s);
        family("drops_waiting", "gauge", "Drops still inside their quiet time at the last run.", &|m| m.waiting as f64);
        family("lease_takeovers_total", "counter", "Leases taken over from an expired worker.", &|m| m.lease_takeovers as f64);
        family("leases_lost_total", "counter", "Leases this worker lost to another (work stopped).", &|m| m.leases_lost as f64);
        family("runs_total", "counter", "Runs of the job.", &|m| m.runs as f64);
        family("last_run_timestamp_seconds", "gauge", "Unix time the last run ended.", &|m| m.last_run);
        family("last_run_success", "gauge", "1 when the last run succeeded, 0 when it failed.", &|m| if m.last_run_ok { 1.0 } else { 0.0 });
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded).
            while n < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (status, kind, body) = match (method, path.split('?').next().unwrap_or("")) {
                ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
                ("GET", "/healthz") => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_string()),
                ("GET", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n".to_string()),
                _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET only\n".to_string()),
            };
            let response =
                format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        let m = Metrics::default();
        m.update("label-new", |j| {
            j.studies_done += 3;
            j.last_run_ok = true;
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, m.clone()));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            text
        };
        let text = get("/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("cinestream_studies_done_total{job=\"label-new\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE cinestream_queue_lag_seconds gauge"), "{text}");
        assert!(text.contains("cinestream_last_run_success{job=\"label-new\"} 1\n"), "{text}");
        assert!(get("/healthz").await.ends_with("ok\n"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
