//! Pseudonymous study ids stay secret and stable: no key, no ingest (of input that needs one);
//! the output records the key's fingerprint, never the key; another key is refused; the same key
//! gives the same ids.

use std::path::Path;
use std::sync::Arc;

use cinestream::ingest::IngestConfig;
use cinestream::ingest::{self, IngestError};
use cinestream::progress::Quiet;
use cinestream::source::pseudonym::{self, KeyError, PseudonymKey};

use crate::common;

/// Copies the DICOM files of a phantom into `dst` without the Kaggle folders (`<n>.dcm`), so
/// studies are grouped by StudyInstanceUID.
pub fn flatten(src: &Path, dst: &Path) -> usize {
    std::fs::create_dir_all(dst).unwrap();
    let files: Vec<_> = common::files_under(src).into_iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")).collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, dst.join(format!("{i:05}.dcm"))).unwrap();
    }
    files.len()
}

fn config(input: &Path, output: &Path, key: &PseudonymKey) -> IngestConfig {
    let mut cfg = IngestConfig::new(input.to_str().unwrap(), output.to_str().unwrap());
    cfg.pseudonym_key = Some(key.clone());
    cfg
}

async fn study_ids(data: &Path) -> Vec<String> {
    let b = common::sql(data.to_str().unwrap(), "SELECT DISTINCT study_id FROM frames ORDER BY study_id").await;
    common::strs(&b, "study_id").into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonym_keys_are_required_recorded_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let phantom = dir.path().join("phantom");
    common::synth(phantom.to_str().unwrap(), 3, 11, "").await;
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    flatten(&phantom.join("train/1"), &first);
    flatten(&phantom.join("train/2"), &second);
    let k1 = PseudonymKey::new(b"0123456789abcdef-key-one", "test key one").unwrap();
    let k2 = PseudonymKey::new(b"0123456789abcdef-key-two", "test key two").unwrap();

    // Made with k1: pseudonymous ids, the fingerprint recorded beside the tables and in the commit.
    let data = dir.path().join("data");
    let report = ingest::run(&config(&first, &data, &k1), Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.pseudonym_key.as_deref(), Some(k1.fingerprint().as_str()));
    let ids = study_ids(&data).await;
    assert_eq!(ids.len(), 1);
    assert!(ids[0].starts_with('s') && ids[0].len() == 17, "{ids:?}");
    let marker = std::fs::read_to_string(data.join(pseudonym::MARKER)).unwrap();
    assert!(marker.contains(&k1.fingerprint()), "{marker}");
    let log =
        common::files_under(&data.join("sources/_delta_log")).into_iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<String>();
    assert!(log.contains(&k1.fingerprint()), "the sources commit records the key's fingerprint");
    for (name, bytes) in common::output_texts(&data) {
        assert!(!String::from_utf8_lossy(&bytes).contains("key-one"), "the key reached {name}");
    }

    // Another key into the same output: refused before anything is written.
    let versions = common::files_under(&data.join("frames/_delta_log")).len();
    let err = ingest::run(&config(&second, &data, &k2), Arc::new(Quiet)).await.unwrap_err();
    assert!(matches!(&err, IngestError::Key(KeyError::Mismatch { .. })), "{err}");
    let text = err.to_string();
    assert!(text.contains(&k1.fingerprint()) && text.contains(&k2.fingerprint()), "{text}");
    assert_eq!(common::files_under(&data.join("frames/_delta_log")).len(), versions, "nothing committed");
    assert_eq!(study_ids(&data).await, ids);

    // The same key: accepted, and the same study gets the same id in another output.
    ingest::run(&config(&second, &data, &k1), Arc::new(Quiet)).await.unwrap();
    assert_eq!(study_ids(&data).await.len(), 2);
    let again = dir.path().join("again");
    ingest::run(&config(&first, &again, &k1), Arc::new(Quiet)).await.unwrap();
    assert_eq!(study_ids(&again).await, ids, "stable ids");
    let other = dir.path().join("other");
    ingest::run(&config(&first, &other, &k2), Arc::new(Quiet)).await.unwrap();
    assert_ne!(study_ids(&other).await, ids, "the id depends on the key");

    // The command line without a key: a clear error and nothing written; `key create` makes one
    // in the config folder (not beside the data), and the same command then works.
    let config_dir = dir.path().join("config");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
            .args(args)
            .env_remove(pseudonym::KEY_ENV)
            .env_remove(pseudonym::KEY_FILE_ENV)
            .env(pseudonym::CONFIG_DIR_ENV, &config_dir)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let cli_data = dir.path().join("cli-data");
    let ingest_args = ["ingest", "--input", first.to_str().unwrap(), "--output", cli_data.to_str().unwrap(), "--quiet"];
    let (code, _, stderr) = cli(&ingest_args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("CINESTREAM_PSEUDONYM_KEY") && stderr.contains("cinestream key create") && !stderr.contains("00000.dcm"),
        "{stderr}"
    );
    assert!(!cli_data.join("frames").exists(), "nothing written without a key");
    let (code, stdout, stderr) = cli(&["key", "create"]);
    assert_eq!(code, Some(0), "{stderr}");
    let written = std::fs::read_dir(&config_dir).unwrap().count();
    assert_eq!(written, 1, "one key file in the config folder");
    let shown = cli(&["key", "show"]).1;
    assert!(stdout.contains(shown.split_whitespace().next().unwrap()), "{stdout} / {shown}");
    let (code, _, stderr) = cli(&["key", "create"]);
    assert_eq!(code, Some(1), "a second create keeps the first key: {stderr}");
    let (code, _, stderr) = cli(&ingest_args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(study_ids(&cli_data).await.len(), 1);
    assert!(!common::files_under(&cli_data).iter().any(|p| p.ends_with("pseudonym.key")), "the key is never beside the data");
}
