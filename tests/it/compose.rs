//! docker-compose.yml parses (Debian's docker-compose validates it without a Docker engine) and
//! has the services the README promises (MinIO, buckets, setup, the scheduler), and needs a
//! pseudonym key.

#[test]
fn compose_file_is_valid() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let config = |key: Option<&str>| {
        let mut c = std::process::Command::new("docker-compose");
        c.args(["-f", file, "config"]).env_remove("CINESTREAM_PSEUDONYM_KEY");
        if let Some(k) = key {
            c.env("CINESTREAM_PSEUDONYM_KEY", k);
        }
        c.output()
    };
    let out = config(Some("compose-test-key-0123456789"));
    let out = match out {
        Ok(o) => o,
        Err(e) if std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err() => {
            eprintln!("SKIPPED compose_file_is_valid: docker-compose not installed ({e})");
            return;
        }
        Err(e) => panic!("docker-compose not installed: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for service in ["minio:", "createbuckets:", "setup:", "scheduler:", "cinestream:"] {
        assert!(stdout.contains(service), "no `{service}` in\n{stdout}");
    }
    assert!(stdout.contains("AWS_ENDPOINT_URL"), "cinestream must be pointed at MinIO");
    assert!(stdout.contains("schedule-example.toml"), "the scheduler runs the example pipeline");
    // No pseudonym key, no services: compose says which variable to set.
    let without = config(None).unwrap();
    assert!(!without.status.success(), "compose must refuse to start without a pseudonym key");
    assert!(String::from_utf8_lossy(&without.stderr).contains("CINESTREAM_PSEUDONYM_KEY"), "{}", String::from_utf8_lossy(&without.stderr));
}
