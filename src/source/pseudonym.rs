//! The secret key behind pseudonymous study ids.
//!
//! Studies outside the Kaggle layout are grouped by StudyInstanceUID, and their id is a keyed
//! hash of it ([`crate::source::layout::pseudonym`]). Whoever holds the key can recompute an id
//! from a UID, so the key is a secret, and the same key must make every id of one output prefix
//! (or one study would get two ids). Hence:
//!
//! - **Where the key comes from**, in order: `CINESTREAM_PSEUDONYM_KEY` (the key itself),
//!   `CINESTREAM_PSEUDONYM_KEY_FILE` (a file holding it, e.g. a Docker or Kubernetes secret), or
//!   `pseudonym.key` in the user's config folder (`cinestream key create` writes one, readable by
//!   the user only). Never beside the data, never a built-in default: without a key, an input
//!   that needs one is refused with a message saying how to make one.
//! - **What the output records**: the key's fingerprint (a hash of the key, not the key) in
//!   `_cinestream/pseudonym_key.json` under the output prefix, created once with a create-only
//!   put, and in the summary of every ingest commit that made pseudonyms.
//! - **What is refused**: ingesting into a prefix whose recorded fingerprint is another key's.

use std::path::{Path, PathBuf};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{StoreLocation, explain};

/// The key itself.
pub const KEY_ENV: &str = "CINESTREAM_PSEUDONYM_KEY";
/// A file holding the key.
pub const KEY_FILE_ENV: &str = "CINESTREAM_PSEUDONYM_KEY_FILE";
/// The config folder (default `$XDG_CONFIG_HOME/cinestream`, else `~/.config/cinestream`).
pub const CONFIG_DIR_ENV: &str = "CINESTREAM_CONFIG_DIR";
/// Where an output prefix records the fingerprint of its key.
pub const MARKER: &str = "_cinestream/pseudonym_key.json";
/// Shortest key accepted (bytes).
pub const MIN_KEY_BYTES: usize = 16;

/// Errors about the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the pseudonym key from {origin} is {len} bytes: use at least {MIN_KEY_BYTES} (`cinestream key create` makes a random one)")]
    TooShort { origin: String, len: usize },
    #[error("cannot read the pseudonym key file `{path}` ({KEY_FILE_ENV} or the config folder): {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write the pseudonym key file `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("a pseudonym key already exists at `{path}` (fingerprint {fingerprint}): it is kept, as the outputs made with it need it")]
    Exists { path: String, fingerprint: String },
    #[error("no config folder: set {CONFIG_DIR_ENV}, XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    #[error("cannot read or record the pseudonym key fingerprint at `{url}`: {}", explain(source))]
    Marker { url: String, source: object_store::Error },
    #[error("`{url}` is not a pseudonym key record ({source}): restore it or remove it if the prefix holds no pseudonymous studies")]
    BadMarker { url: String, source: serde_json::Error },
    #[error(
        "the output `{output}` was made with pseudonym key {recorded}, but this run's key (from {origin}) is {ours}: \
         its study ids would not match the ones already there. Use the key the output was made with \
         ({KEY_ENV} or {KEY_FILE_ENV}), or ingest into another output"
    )]
    Mismatch { output: String, recorded: String, ours: String, origin: String },
}

/// A pseudonym key. `Debug` shows where it came from and its fingerprint, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey {
    secret: Vec<u8>,
    origin: String,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymKey({}, {})", self.origin, self.fingerprint())
    }
}

impl PseudonymKey {
    /// A key from its bytes (surrounding white space dropped); `origin` says where it came from.
    pub fn new(secret: &[u8], origin: impl Into<String>) -> Result<Self, KeyError> {
        let origin = origin.into();
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { origin, len: secret.len() });
        }
        Ok(PseudonymKey { secret, origin })
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `sha256:` and 16 hex digits of a domain-separated SHA-256 of the key.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"cinestream-pseudonym-key-fingerprint-v1\n");
        h.update(&self.secret);
        format!("sha256:{}", &hex::encode(h.finalize())[..16])
    }
}

/// The config folder: `$CINESTREAM_CONFIG_DIR`, `$XDG_CONFIG_HOME/cinestream` or
/// `~/.config/cinestream`.
pub fn config_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(CONFIG_DIR_ENV)
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("cinestream")))
        .or_else(|| var("HOME").map(|h| h.join(".config").join("cinestream")))
}

/// Where `cinestream key create` writes the key.
pub fn default_key_file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("pseudonym.key"))
}

fn read_file(path: &Path, origin: String) -> Result<PseudonymKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: path.display().to_string(), source })?;
    PseudonymKey::new(&bytes, origin)
}

/// The key from the environment or the config folder; `None` when there is none.
pub fn resolve() -> Result<Option<PseudonymKey>, KeyError> {
    if let Ok(k) = std::env::var(KEY_ENV)
        && !k.is_empty()
    {
        return PseudonymKey::new(k.as_bytes(), KEY_ENV).map(Some);
    }
    if let Some(path) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return read_file(&path, format!("{KEY_FILE_ENV}={}", path.display())).map(Some);
    }
    match default_key_file() {
        Some(path) if path.exists() => read_file(&path, path.display().to_string()).map(Some),
        _ => Ok(None),
    }
}

/// How to get a key, for error messages.
pub fn how_to_get_one() -> String {
    let file = default_key_file().map_or("the config folder".to_string(), |p| p.display().to_string());
    format!(
        "set {KEY_ENV} (at least {MIN_KEY_BYTES} characters) or {KEY_FILE_ENV}, or run `cinestream key create` once (writes {file}); keep the key, as every later ingest into the same output needs it"
    )
}

/// Writes a new random key (32 bytes, hex) to `path`, readable by the user only; refuses to
/// replace one.
pub fn create(path: &Path) -> Result<PseudonymKey, KeyError> {
    let shown = path.display().to_string();
    if path.exists() {
        let fingerprint = read_file(path, shown.clone()).map(|k| k.fingerprint()).unwrap_or_else(|e| format!("unreadable: {e}"));
        return Err(KeyError::Exists { path: shown, fingerprint });
    }
    let write_err = |source| KeyError::Write { path: shown.clone(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let secret = hex::encode(crate::ids::os_random(32).map_err(write_err)?);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(write_err)?;
    std::io::Write::write_all(&mut f, format!("{secret}\n").as_bytes()).map_err(write_err)?;
    PseudonymKey::new(secret.as_bytes(), shown)
}

/// The record under an output prefix.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    fingerprint: String,
    created: String,
    cinestream_version: String,
}

async fn recorded(out: &StoreLocation, url: &str) -> Result<Option<String>, KeyError> {
    match out.store.get(&out.child(MARKER)).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|source| KeyError::Marker { url: url.into(), source })?;
            let m: Marker = serde_json::from_slice(&bytes).map_err(|source| KeyError::BadMarker { url: url.into(), source })?;
            Ok(Some(m.fingerprint))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(KeyError::Marker { url: url.into(), source }),
    }
}

/// Refuses `key` when `out` records another key; records it when `out` records none (a
/// create-only put, so two first runs with different keys cannot both record theirs).
pub async fn check_prefix(out: &StoreLocation, key: &PseudonymKey) -> Result<(), KeyError> {
    let url = out.object_url(&out.child(MARKER));
    let ours = key.fingerprint();
    let found = match recorded(out, &url).await? {
        Some(f) => f,
        None => {
            let m = Marker {
                fingerprint: ours.clone(),
                created: chrono::Utc::now().to_rfc3339(),
                cinestream_version: env!("CARGO_PKG_VERSION").into(),
            };
            let body = PutPayload::from(serde_json::to_vec_pretty(&m).expect("the marker serialises"));
            match out.store.put_opts(&out.child(MARKER), body, PutOptions { mode: PutMode::Create, ..Default::default() }).await {
                Ok(_) => {
                    tracing::info!(output = %out, fingerprint = %ours, "recorded the pseudonym key's fingerprint");
                    return Ok(());
                }
                // Another run recorded one first (or our put landed and its reply was lost).
                Err(object_store::Error::AlreadyExists { .. }) => recorded(out, &url).await?.unwrap_or_default(),
                Err(source) => return Err(KeyError::Marker { url, source }),
            }
        }
    };
    if found == ours {
        Ok(())
    } else {
        Err(KeyError::Mismatch { output: out.url().to_string(), recorded: found, ours, origin: key.origin.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(matches!(PseudonymKey::new(b"short", "test"), Err(KeyError::TooShort { len: 5, .. })));
        let k = PseudonymKey::new(b"  a-long-enough-secret-key\n", "test").unwrap();
        assert_eq!(k.secret(), b"a-long-enough-secret-key");
        let shown = format!("{k:?}");
        assert!(!shown.contains("secret-key") && shown.contains(&k.fingerprint()), "{shown}");
        assert_ne!(k.fingerprint(), PseudonymKey::new(b"another-long-secret-key", "t").unwrap().fingerprint());
        assert!(k.fingerprint().starts_with("sha256:") && k.fingerprint().len() == 23);
    }

    #[test]
    fn create_writes_a_private_random_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pseudonym.key");
        let k = create(&path).unwrap();
        assert_eq!(k.secret().len(), 64);
        #[cfg(unix)]
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions()) & 0o777, 0o600);
        let again = create(&path).unwrap_err();
        assert!(matches!(&again, KeyError::Exists { fingerprint, .. } if *fingerprint == k.fingerprint()), "{again}");
        assert_eq!(read_file(&path, "f".into()).unwrap().secret(), k.secret());
        assert_ne!(create(&dir.path().join("other.key")).unwrap().secret(), k.secret());
    }

    #[tokio::test]
    async fn a_prefix_keeps_the_key_it_was_made_with() {
        let out = crate::store::open("memory://pseudonym-test/data", &Default::default()).unwrap();
        let k1 = PseudonymKey::new(b"first-key-0123456789", "one").unwrap();
        let k2 = PseudonymKey::new(b"second-key-0123456789", "two").unwrap();
        check_prefix(&out, &k1).await.unwrap();
        check_prefix(&out, &k1).await.unwrap();
        let err = check_prefix(&out, &k2).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&k1.fingerprint()) && text.contains(&k2.fingerprint()) && text.contains("from two"), "{text}");
        assert!(!text.contains("first-key") && !text.contains("second-key"), "{text}");
    }
}
