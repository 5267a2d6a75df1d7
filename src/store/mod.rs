//! Storage URLs → object stores.
//!
//! Every stage reads and writes through an [`ObjectStore`]; this module is the one place that
//! turns a user's URL into one:
//!
//! | URL | store |
//! |---|---|
//! | `/plain/path`, `./rel`, `file:///abs/path` | local file system (the embedded default) |
//! | `s3://bucket/prefix` | S3 or an S3-compatible server (MinIO, Ceph RGW) |
//! | `memory://name` | an in-process store (unit tests) |
//!
//! S3 settings come from the usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).
//! When an endpoint is set (MinIO, Ceph) requests are path-style, and `http://` endpoints are
//! allowed. Credentials are never logged: [`StoreLocation`]'s `Display` shows the URL only.
//!
//! Retries, back-off and timeouts are set explicitly from [`StoreOptions`] rather than left to
//! library defaults.

pub mod counting;
pub mod resilient;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

/// Errors turning a URL into a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot parse storage URL `{url}`: {reason}. Use a path, file:///abs/path, s3://bucket/prefix or memory://name")]
    BadUrl { url: String, reason: String },
    #[error("unsupported storage scheme `{scheme}` in `{url}`: use a path, file://, s3:// or memory://")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("input `{url}` does not exist: check the path")]
    MissingInput { url: String },
    #[error("cannot create local folder `{path}` for `{url}`: {source}")]
    LocalDir { url: String, path: String, source: std::io::Error },
    #[error("cannot configure S3 for `{url}`: {source}. Check AWS_ENDPOINT_URL, AWS_REGION and the credentials variables")]
    S3Config { url: String, source: object_store::Error },
}

/// Retry and timeout settings for remote stores (ignored by local and memory stores).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// Retries of a failed request (server errors, timeouts, connection resets).
    pub max_retries: usize,
    /// Give up retrying a request after this many seconds.
    pub retry_timeout_s: f64,
    /// First back-off delay, doubled after each failure up to `max_backoff_s`.
    pub initial_backoff_ms: u64,
    /// Longest back-off delay.
    pub max_backoff_s: f64,
    /// Whole-request timeout.
    pub request_timeout_s: f64,
    /// TCP connect timeout.
    pub connect_timeout_s: f64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_retries: 5,
            retry_timeout_s: 120.0,
            initial_backoff_ms: 100,
            max_backoff_s: 10.0,
            request_timeout_s: 60.0,
            connect_timeout_s: 5.0,
        }
    }
}

/// A store plus the prefix inside it that a URL names.
#[derive(Clone)]
pub struct StoreLocation {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    url: String,
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLocation").field("url", &self.url).finish()
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl StoreLocation {
    /// Wraps an existing store (tests and wrappers).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, url: impl Into<String>) -> Self {
        Self { store, prefix, url: url.into() }
    }

    /// The URL this location was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `prefix/child` as an object path.
    pub fn child(&self, relative: &str) -> Path {
        join(&self.prefix, relative)
    }

    /// A location one level further down.
    pub fn sub(&self, relative: &str) -> StoreLocation {
        StoreLocation {
            store: self.store.clone(),
            prefix: self.child(relative),
            url: format!("{}/{}", self.url.trim_end_matches('/'), relative.trim_matches('/')),
        }
    }

    /// The part of `path` below this location's prefix (`path` itself when it is not below).
    pub fn relative<'a>(&self, path: &'a Path) -> &'a str {
        let p = path.as_ref();
        let pre = self.prefix.as_ref();
        if pre.is_empty() {
            return p;
        }
        p.strip_prefix(pre).map(|r| r.trim_start_matches('/')).unwrap_or(p)
    }

    /// A URL naming one object of this store (for messages and `source_key` columns).
    pub fn object_url(&self, path: &Path) -> String {
        let rel = self.relative(path);
        format!("{}/{}", self.url.trim_end_matches('/'), rel)
    }
}

/// `base/relative`, skipping empty parts.
pub fn join(base: &Path, relative: &str) -> Path {
    let mut s = base.as_ref().to_string();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(part);
    }
    Path::from(s)
}

/// Opens the store a URL names. Local folders are created when missing.
pub fn open(url: &str, opts: &StoreOptions) -> Result<StoreLocation, StoreError> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(StoreError::BadUrl { url: url.into(), reason: "empty".into() });
    }
    if !trimmed.contains("://") {
        return open_local(trimmed, url);
    }
    let parsed = url::Url::parse(trimmed).map_err(|e| StoreError::BadUrl { url: url.into(), reason: e.to_string() })?;
    match parsed.scheme() {
        "file" => {
            let path =
                parsed.to_file_path().map_err(|_| StoreError::BadUrl { url: url.into(), reason: "not an absolute file path".into() })?;
            open_local(&path.to_string_lossy(), url)
        }
        "memory" => {
            let name = parsed.host_str().unwrap_or("default").to_string();
            let prefix = Path::from(parsed.path().trim_matches('/'));
            Ok(StoreLocation { store: memory_store(&name), prefix, url: trimmed.trim_end_matches('/').into() })
        }
        "s3" | "s3a" => open_s3(&parsed, url, opts),
        other => Err(StoreError::UnsupportedScheme { url: url.into(), scheme: other.into() }),
    }
}

/// Reading one object by its URL failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Its folder's store could not be opened.
    #[error(transparent)]
    Open(#[from] StoreError),
    /// The request failed (the original error is the source, for [`retryable`]).
    #[error("{}", explain(source))]
    Request {
        #[from]
        source: object_store::Error,
    },
}

/// The bytes of one object named by a path or URL (`./w.pth`, `s3://bucket/models/m.bin`).
pub async fn read_object(url: &str, opts: &StoreOptions) -> Result<bytes::Bytes, ReadError> {
    use object_store::ObjectStoreExt;
    let (folder, name) = url.trim().rsplit_once('/').unwrap_or((".", url.trim()));
    let loc = open_existing(if folder.is_empty() { "/" } else { folder }, opts)?;
    let path = loc.child(name);
    Ok(loc.store.get(&path).await?.bytes().await?)
}

/// Like [`open`], for something that must already exist: a local folder is not created.
pub fn open_existing(url: &str, opts: &StoreOptions) -> Result<StoreLocation, StoreError> {
    let trimmed = url.trim();
    let local = if trimmed.contains("://") {
        url::Url::parse(trimmed).ok().filter(|u| u.scheme() == "file").and_then(|u| u.to_file_path().ok())
    } else {
        Some(std::path::PathBuf::from(trimmed))
    };
    if local.is_some_and(|p| !p.exists()) {
        return Err(StoreError::MissingInput { url: url.into() });
    }
    open(url, opts)
}

fn open_local(path: &str, url: &str) -> Result<StoreLocation, StoreError> {
    let dir = std::path::Path::new(path);
    std::fs::create_dir_all(dir).map_err(|source| StoreError::LocalDir { url: url.into(), path: path.into(), source })?;
    let abs = dir.canonicalize().map_err(|source| StoreError::LocalDir { url: url.into(), path: path.into(), source })?;
    let fs = LocalFileSystem::new_with_prefix(&abs).map_err(|e| StoreError::BadUrl { url: url.into(), reason: e.to_string() })?;
    // Create-only puts and atomic renames are what the shard writer relies on.
    let fs = fs.with_automatic_cleanup(true);
    Ok(StoreLocation { store: Arc::new(fs), prefix: Path::default(), url: format!("file://{}", abs.display()) })
}

/// Named in-process stores, shared within the process so `memory://x` means one store.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut map = STORES.get_or_init(Default::default).lock().expect("memory store registry poisoned");
    map.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone()
}

fn open_s3(parsed: &url::Url, url: &str, opts: &StoreOptions) -> Result<StoreLocation, StoreError> {
    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| StoreError::BadUrl { url: url.into(), reason: "no bucket name".into() })?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(opts.initial_backoff_ms),
            max_backoff: Duration::from_secs_f64(opts.max_backoff_s),
            base: 2.0,
        },
        max_retries: opts.max_retries,
        retry_timeout: Duration::from_secs_f64(opts.retry_timeout_s),
    };
    let client = ClientOptions::new()
        .with_timeout(Duration::from_secs_f64(opts.request_timeout_s))
        .with_connect_timeout(Duration::from_secs_f64(opts.connect_timeout_s));
    // Client options first: `with_allow_http` below edits them, `with_client_options` replaces them.
    let mut builder = AmazonS3Builder::from_env()
        .with_client_options(client)
        .with_retry(retry)
        .with_bucket_name(bucket)
        .with_allow_http(env_flag("AWS_ALLOW_HTTP"));
    let endpoint =
        ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| std::env::var(k).ok().filter(|e| !e.is_empty()));
    if let Some(endpoint) = endpoint {
        // MinIO / Ceph style: path-style requests; plain http allowed for such an endpoint.
        let http = endpoint.starts_with("http://");
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        if http {
            builder = builder.with_allow_http(true);
        }
    }
    let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION"));
    builder = builder.with_region(region.unwrap_or_else(|_| "us-east-1".into()));
    let store = builder.build().map_err(|source| StoreError::S3Config { url: url.into(), source })?;
    let prefix = Path::from(parsed.path().trim_matches('/'));
    // Puts and deletes that failed in transit are retried here (the client retries only what is
    // safe to repeat blindly).
    let store = resilient::ResilientStore::new(Arc::new(store), opts.max_retries + 1, Duration::from_millis(opts.initial_backoff_ms));
    Ok(StoreLocation { store: Arc::new(store), prefix, url: format!("s3://{}{}", bucket, parsed.path().trim_end_matches('/')) })
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).map(|v| v.eq_ignore_ascii_case("true") || v == "1").unwrap_or(false)
}

/// Whether a storage error is worth retrying at a higher level (the client already retried
/// transport failures); authentication, permission, not-found and precondition errors are not.
pub fn retryable(err: &object_store::Error) -> bool {
    use object_store::Error as E;
    !refusal_code(&err.to_string())
        && !matches!(
            err,
            E::NotFound { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::NotModified { .. }
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::InvalidPath { .. }
                | E::NotSupported { .. }
                | E::NotImplemented { .. }
                | E::UnknownConfigurationKey { .. }
        )
}

/// Whether `err` or an error in its chain is a storage failure that may pass if the work is
/// run again later (a timeout or a server error that outlasted the client's own retries); the
/// CLI says so and exits with status 75 (EX_TEMPFAIL), which schedulers retry.
pub fn transient(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(s) = e.downcast_ref::<object_store::Error>() {
            return retryable(s);
        }
        next = e.source();
    }
    false
}

/// Whether a storage error's text carries an S3 error code for refused credentials (some S3
/// servers answer a bad signature in a form the client reports as a generic error).
fn refusal_code(text: &str) -> bool {
    text.contains("SignatureDoesNotMatch") || text.contains("InvalidAccessKeyId")
}

/// [`refusal_code`], or a 403 anywhere in the text: good enough for a hint, too loose to decide
/// retries (an object key may contain `403`).
fn credentials_refused(text: &str) -> bool {
    refusal_code(text) || text.contains("403")
}

/// A short, credential-free description of a storage error for users, with a hint.
pub fn explain(err: &object_store::Error) -> String {
    use object_store::Error as E;
    let hint = match err {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            " — the server refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        }
        E::NotFound { .. } => " — check the URL and that the bucket/prefix exists",
        _ => "",
    };
    let mut text = err.to_string();
    if hint.is_empty() && credentials_refused(&text) {
        text.push_str(" — the server refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY");
        return text;
    }
    text + hint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_file_urls_are_local() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
        assert!(a.url().starts_with("file:///"));
        let b = open(&format!("file://{}", dir.path().display()), &StoreOptions::default()).unwrap();
        assert_eq!(a.url(), b.url());
    }

    #[test]
    fn memory_urls_share_a_store_and_keep_the_prefix() {
        let a = open("memory://shared/some/prefix", &StoreOptions::default()).unwrap();
        assert_eq!(a.prefix.as_ref(), "some/prefix");
        assert_eq!(a.child("x/y.dcm").as_ref(), "some/prefix/x/y.dcm");
        assert_eq!(a.relative(&a.child("x/y.dcm")), "x/y.dcm");
    }

    #[test]
    fn missing_local_inputs_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        let err = open_existing(missing.to_str().unwrap(), &StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!missing.exists());
        assert!(open_existing(dir.path().to_str().unwrap(), &StoreOptions::default()).is_ok());
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        let err = open("gopher://x/y", &StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("gopher"), "{err}");
    }

    /// Our errors keep the storage error as their source, so a failure that may pass is told
    /// apart from one that needs a person however deep it sits.
    #[tokio::test]
    async fn transient_failures_are_found_through_the_chain() {
        use object_store::ObjectStoreExt;
        let generic = |text: &str| object_store::Error::Generic { store: "S3", source: text.to_string().into() };
        let wrapped = |source| crate::source::SourceError::Fetch { object: "a/b.dcm".into(), source };
        assert!(transient(&wrapped(generic("error sending request: connection refused"))));
        assert!(!transient(&wrapped(generic("SignatureDoesNotMatch: the request signature we calculated does not match"))));
        // A key that happens to hold `403` does not make a timeout permanent.
        assert!(transient(&crate::source::SourceError::Fetch {
            object: "train/403/study/sax_5/IM-1.dcm".into(),
            source: generic("operation timed out")
        }));
        let missing =
            open("memory://transient-test", &StoreOptions::default()).unwrap().store.get(&Path::from("nothing")).await.unwrap_err();
        assert!(matches!(missing, object_store::Error::NotFound { .. }));
        let read = ReadError::from(missing);
        assert!(!transient(&read), "not found needs a person");
        assert!(!transient(&std::io::Error::other("no storage in the chain")));
        // The message shows the hint once; the source is still there for matching.
        let e = wrapped(generic("connection refused"));
        assert!(e.to_string().contains("a/b.dcm") && std::error::Error::source(&e).is_some());
    }
}
