//! No planted patient-identifying string appears in any output byte: Parquet values (decoded),
//! raw files, the manifest, stdout and the logs (JSON, debug level).

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;


fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { walk(&p, out) } else { out.push(p) }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The first of `needles` found in `hay`, in one linear pass.
fn find_any(hay: &[u8], needles: &aho_corasick::AhoCorasick, names: &[String]) -> Option<String> {
    needles.find(hay).map(|m| names[m.pattern().as_usize()].clone())
}

#[test]
fn no_planted_phi_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let seed = 77u64;
    let s = std::process::Command::new(bin).args(["synth", "--out", raw.to_str().unwrap(), "--studies", "4", "--seed", "77", "--defects", "all"]).output().unwrap();
    assert!(s.status.success());
    let labels = raw.join("truth");
    let out = std::process::Command::new(bin)
        .args(["--json", "-vv", "ingest", "--input", raw.to_str().unwrap(), "--output", data.to_str().unwrap(), "--labels", labels.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let secrets: Vec<String> = (0..4)
        .flat_map(|i| cinestream::synth::identity(seed, cinestream::synth::study_place(i).1).secrets())
        .collect();
    // The planted values really are in the input (the test would be empty otherwise).
    let any_input = std::fs::read(raw.join("train/1/study/sax_5/IM-0005-0001.dcm")).unwrap();
    let planted = cinestream::synth::identity(seed, 1);
    assert!(contains(&any_input, &planted.patient_name) && contains(&any_input, &planted.study_uid));

    let mut texts: Vec<(String, Vec<u8>)> = vec![("stdout".into(), out.stdout.clone()), ("stderr".into(), out.stderr.clone())];
    let mut files = Vec::new();
    walk(&data, &mut files);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        texts.push((f.display().to_string(), bytes));
        if f.extension().is_some_and(|e| e == "parquet") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap()).unwrap().build().unwrap();
            let mut decoded = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                for col in batch.columns() {
                    match col.data_type() {
                        DataType::Binary => {
                            let a = col.as_binary::<i32>();
                            (0..a.len()).filter(|i| !a.is_null(*i)).for_each(|i| decoded.extend_from_slice(a.value(i)));
                        }
                        _ => {
                            let s = arrow::compute::cast(col, &DataType::Utf8).unwrap();
                            let a = s.as_string::<i32>();
                            (0..a.len()).filter(|i| !a.is_null(*i)).for_each(|i| {
                                decoded.extend_from_slice(a.value(i).as_bytes());
                                decoded.push(b'\n');
                            });
                        }
                    }
                }
            }
            texts.push((format!("{} (decoded)", f.display()), decoded));
        }
    }
    let matcher = aho_corasick::AhoCorasick::new(&secrets).unwrap();
    for (name, bytes) in &texts {
        if let Some(s) = find_any(bytes, &matcher, &secrets) {
            panic!("planted PHI `{s}` found in {name}");
        }
    }
}
