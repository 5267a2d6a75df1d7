//! One storage suite over every backend (memory://, file://, the S3 server), plus credentials.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::common::*;
use cinestream::store::StoreLocation;

async fn conformance(loc: &StoreLocation) {
    let s = &loc.store;
    let a = loc.child("dir/a.bin");
    let b = loc.child("dir/sub/b.bin");
    s.put(&a, PutPayload::from_static(b"hello")).await.unwrap();
    s.put(&b, PutPayload::from(vec![7u8; 100_000])).await.unwrap();
    assert_eq!(s.get(&a).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"hello"));
    assert_eq!(s.get_range(&b, 10..20).await.unwrap(), Bytes::from(vec![7u8; 10]));
    assert_eq!(s.head(&b).await.unwrap().size, 100_000);
    let mut listed: Vec<Path> = s.list(Some(&loc.child("dir"))).map_ok(|m| m.location).try_collect().await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    // Create-only puts (what Delta commits rely on) refuse to overwrite, by meaning.
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let err = s.put_opts(&a, PutPayload::from_static(b"again"), create).await.unwrap_err();
    assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(s.get(&a).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"hello"));
    s.delete(&a).await.unwrap();
    let err = s.get(&a).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err:?}");
    assert!(!cinestream::store::retryable(&err));
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(&open(&format!("memory://{}/p", unique("mem")))).await;
}

#[tokio::test]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&open(dir.path().to_str().unwrap())).await;
}

#[tokio::test]
async fn s3_store_conforms() {
    let Some(bucket) = s3_bucket("s3_store_conforms") else { return };
    conformance(&open(&format!("s3://{bucket}/{}", unique("conformance")))).await;
}

/// Wrong credentials: the CLI exits non-zero with an error that names the problem, prints no
/// secret, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_credentials_fail_clearly_and_write_nothing() {
    let Some(bucket) = s3_bucket("wrong_s3_credentials_fail_clearly_and_write_nothing") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("raw");
    synth(input.to_str().unwrap(), 1, 3, "none").await;
    let prefix = unique("wrong-creds");
    let wrong_secret = "definitely-not-the-secret-42";
    for (args, what) in [
        (
            vec![
                "ingest".to_string(),
                "--input".into(),
                input.to_str().unwrap().into(),
                "--output".into(),
                format!("s3://{bucket}/{prefix}/out"),
            ],
            "output",
        ),
        (
            vec![
                "ingest".into(),
                "--input".into(),
                format!("s3://{bucket}/{prefix}/in"),
                "--output".into(),
                dir.path().join("out").to_str().unwrap().into(),
            ],
            "input",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
            .args(&args)
            .env("AWS_SECRET_ACCESS_KEY", wrong_secret)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "wrong credentials on the {what} must fail: {stdout} {stderr}");
        assert!(
            stderr.contains("credentials") || stderr.contains("SignatureDoesNotMatch") || stderr.contains("denied"),
            "{what}: {stderr}"
        );
        assert!(stderr.contains(&format!("s3://{bucket}/{prefix}")), "the error names the location: {stderr}");
        assert!(!stderr.contains(wrong_secret) && !stdout.contains(wrong_secret), "secret printed");
    }
    let written: Vec<_> =
        open(&format!("s3://{bucket}/{prefix}")).store.list(Some(&Path::from(prefix.as_str()))).try_collect().await.unwrap();
    assert!(written.is_empty(), "nothing may be written with wrong credentials: {written:?}");
    assert!(!dir.path().join("out/frames/_delta_log").exists());
}
