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
