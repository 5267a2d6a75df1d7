//! No planted patient-identifying string appears in any output byte: Parquet values (decoded),
//! raw files, the Delta logs, stdout and the logs (JSON, debug level).

use crate::common::output_texts;

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_planted_phi_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let seed = 77u64;
    let s = std::process::Command::new(bin)
        .args(["synth", "--out", raw.to_str().unwrap(), "--studies", "4", "--seed", "77", "--defects", "all"])
        .output()
        .unwrap();
    assert!(s.status.success());
    let labels = raw.join("truth");
    let out = std::process::Command::new(bin)
        .args([
            "--json",
            "-vv",
            "ingest",
            "--input",
            raw.to_str().unwrap(),
            "--output",
            data.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let secrets: Vec<String> =
        (0..4).flat_map(|i| cinestream::synth::identity(seed, cinestream::synth::study_place(i).1).secrets()).collect();
    // The planted values really are in the input (the test would be empty otherwise).
    let any_input = std::fs::read(raw.join("train/1/study/sax_5/IM-0005-0001.dcm")).unwrap();
    let planted = cinestream::synth::identity(seed, 1);
    assert!(contains(&any_input, &planted.patient_name) && contains(&any_input, &planted.study_uid));

    let mut texts = output_texts(&data);
    texts.push(("stdout".into(), out.stdout.clone()));
    texts.push(("stderr".into(), out.stderr.clone()));
    let matcher = aho_corasick::AhoCorasick::new(&secrets).unwrap();
    for (name, bytes) in &texts {
        if let Some(m) = matcher.find(bytes) {
            panic!("planted PHI `{}` found in {name}", secrets[m.pattern().as_usize()]);
        }
    }
}

/// A scheduler's inbox whose folders are named like patients (one in the Kaggle layout below
/// the folder, one outside it): no folder or file name reaches a table, marker, lease, report
/// or log line (JSON, debug level), and `cinestream key find` names the objects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_inbox_folder_name_reaches_any_output() {
    use object_store::{ObjectStoreExt, PutPayload};
    let Some(()) = crate::label_onnx::onnx_tools("no_inbox_folder_name_reaches_any_output") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (raw, inbox, data) = (dir.path().join("raw"), dir.path().join("inbox"), dir.path().join("data"));
    crate::common::synth(raw.to_str().unwrap(), 2, 78, "").await;
    // Folders named after the patients: `Doe_Jane_19700101/1/study/sax_5/…` (Kaggle below the
    // folder) and `Roe_John_19800202/series one/IM0001.dcm` (grouped by UID).
    let names = ["Doe_Jane_19700101", "Roe_John_19800202"];
    let loc = crate::common::open(inbox.to_str().unwrap());
    let dicom = |rel: &str| crate::common::files_under(&raw.join(rel)).into_iter().filter(|f| f.extension().is_some_and(|e| e == "dcm"));
    for f in dicom("train/1") {
        let rel = f.strip_prefix(raw.join("train")).unwrap().display().to_string();
        loc.store.put(&loc.child(&format!("{}/{rel}", names[0])), PutPayload::from(std::fs::read(&f).unwrap())).await.unwrap();
    }
    for (i, f) in dicom("train/2").enumerate() {
        let key = format!("{}/series one/IM{i:04}.dcm", names[1]);
        loc.store.put(&loc.child(&key), PutPayload::from(std::fs::read(&f).unwrap())).await.unwrap();
    }
    let model = dir.path().join("levels.onnx");
    crate::label_onnx::level_model(&model, "nchw");
    let contract = dir.path().join("levels.toml");
    std::fs::write(&contract, crate::label_onnx::contract("nchw", "{ kind = \"pad_multiple\", multiple = 16 }", false)).unwrap();
    let file = dir.path().join("schedule.toml");
    std::fs::write(
        &file,
        format!(
            "[schedule]\nlease_ttl_s = 30\n[[schedule.job]]\nname = \"phi\"\ncron = \"* * * * *\"\ninbox = \"{}\"\noutput = \"{}\"\n\
             quiet_s = 0\ndrop_depth = 1\nmodel = \"{}\"\ncontract = \"{}\"\nlabeller = \"levels\"\n",
            inbox.display(),
            data.display(),
            model.display(),
            contract.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let out = std::process::Command::new(bin)
        .args(["--json", "-vv", "schedule", file.to_str().unwrap(), "--once"])
        .envs([crate::schedule::TEST_KEY])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let labelled =
        crate::common::sql(data.to_str().unwrap(), "SELECT COUNT(DISTINCT study_id) AS n FROM labels WHERE labeller = 'levels'").await;
    assert_eq!(crate::common::i64s(&labelled, "n")[0], 2, "both folders labelled: {stdout}");

    // Both folders were read: two studies labelled, and the tables name their objects.
    let keys = crate::common::strs(
        &crate::common::sql(data.to_str().unwrap(), "SELECT DISTINCT source_key FROM frames ORDER BY 1").await,
        "source_key",
    );
    let keys: Vec<String> = keys.into_iter().flatten().collect();
    assert!(keys.iter().any(|k| k.starts_with("1/study/sax_")), "the Kaggle drop, from its id folder on: {keys:?}");
    let hashed: Vec<&String> = keys.iter().filter(|k| k.starts_with('o') && k.ends_with(".dcm")).collect();
    assert!(!hashed.is_empty(), "the other drop's objects by keyed names: {keys:?}");

    let mut secrets: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    secrets.push("series one".to_string());
    secrets.extend((1..=2).flat_map(|id| cinestream::synth::identity(78, id).secrets()));
    let mut texts = output_texts(&data);
    texts.push(("stdout".into(), out.stdout.clone()));
    texts.push(("stderr".into(), out.stderr.clone()));
    assert!(texts.iter().any(|(n, _)| n.contains("_schedule/phi/done/")), "the done markers are among what is searched");
    let matcher = aho_corasick::AhoCorasick::new(&secrets).unwrap();
    for (name, bytes) in &texts {
        if let Some(m) = matcher.find(bytes) {
            panic!("`{}` found in {name}", secrets[m.pattern().as_usize()]);
        }
        assert!(!name.contains(names[0]) && !name.contains(names[1]), "an output named after a folder: {name}");
    }

    // Whoever holds the key names the objects again: a source key, and a marker's folder.
    let marker = texts.iter().find(|(n, _)| n.contains("_schedule/phi/done/")).unwrap();
    let tag = serde_json::from_slice::<serde_json::Value>(&marker.1).unwrap()["drop"].as_str().unwrap().to_string();
    let found = std::process::Command::new(bin)
        .args(["key", "find", hashed[0], &tag, "--input", inbox.to_str().unwrap()])
        .envs([crate::schedule::TEST_KEY])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&found.stdout);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    assert!(text.contains(&format!("{}\t", hashed[0])) && text.contains(names[1]), "{text}");
    assert!(text.contains(&format!("{tag}\t")) && (text.contains(names[0]) || text.contains(names[1])), "{text}");
    let missing = std::process::Command::new(bin)
        .args(["key", "find", "o0000000000000000.dcm", "--input", inbox.to_str().unwrap()])
        .envs([crate::schedule::TEST_KEY])
        .output()
        .unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("not found"));
}
