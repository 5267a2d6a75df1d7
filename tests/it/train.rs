//! Training on phantom data through the CLI: a tiny model learns LV and MY; a killed run resumes
//! to the same weights as an uninterrupted one; the order of the `labels` files' rows does not
//! change the model.

use std::path::Path;

use burn::backend::Flex;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use cinestream::model::SegModel;

use crate::common::{cli, ingest_phantom, soak, spawn_quiet, synth};

/// A pipeline file for a tiny model.
pub fn pipeline(dir: &Path, name: &str, images: usize, epochs: usize, size: usize, checkpoint_every: usize) -> String {
    pipeline_with(dir, name, images, epochs, size, checkpoint_every, "")
}

/// The same, with more `[train]` settings.
pub fn pipeline_with(dir: &Path, name: &str, images: usize, epochs: usize, size: usize, checkpoint_every: usize, extra: &str) -> String {
    let text = format!(
        r#"[train]
name = "{name}"
train = {{ name = "tiny_train_{images}", query = "subset_images", params = {{ images = "{images}", seed = "1", pool_split = "train" }} }}
valid = {{ name = "tiny_valid", query = "subset_pool", params = {{ pool_split = "validate" }} }}
seed = 7
batch_size = 8
image_size = {size}
augment = "s1"
checkpoint_every = {checkpoint_every}
cache = {{ dir = "{cache}", max_mib = 512 }}
stages = [ {{ epochs = {epochs}, lr_max = 1e-2 }} ]
{extra}
[model]
encoder = "resnet34"
width = 8
blocks = [1, 1, 1, 1]
"#,
        cache = dir.join("cache").display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

pub fn dice_of(stdout: &str) -> (f64, f64) {
    let line = stdout.lines().find(|l| l.starts_with("dice_lv=")).unwrap_or_else(|| panic!("no dice line in {stdout}"));
    let mut it = line.split_whitespace().map(|kv| kv.split_once('=').unwrap().1.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

pub async fn phantom_data(dir: &Path, studies: usize) -> String {
    let (raw, data) = (dir.join("raw"), dir.join("data"));
    synth(raw.to_str().unwrap(), studies, 11, "none").await;
    ingest_phantom(raw.to_str().unwrap(), data.to_str().unwrap()).await;
    data.display().to_string()
}

/// Width 8, one block per stage, validated on the 325 images of the validate study, apical
/// slices included (26% of them have no LV: a stray LV pixel there scores 0). In the test
/// command: 240 images of 3 studies at 64², 3 epochs (90 steps; Dice LV 0.81, MY 0.54 after
/// 66 s, 2026-12-06), enough to show that training learns. In a soak run (`scripts/soak.sh`):
/// 480 images at 96², 6 epochs (360 steps, about 5 minutes), which reaches LV 0.90, MY 0.75.
#[tokio::test]
async fn a_tiny_model_learns_the_phantom() {
    let dir = tempfile::tempdir().unwrap();
    let data = phantom_data(dir.path(), 5).await;
    let (images, epochs, size, min_lv, min_my) = if soak() { (480, 6, 96, 0.90, 0.75) } else { (240, 3, 64, 0.75, 0.45) };
    let p = pipeline(dir.path(), "tiny", images, epochs, size, 0);
    let (ok, out, err) = cli(&["-q", "train", &p, "--data", &data]);
    assert!(ok, "{err}");
    let (lv, my) = dice_of(&out);
    assert!(lv >= min_lv && my >= min_my, "held-out Dice LV {lv}, MY {my}");
    // Outputs: weights with lineage, the log, the curve.
    let run = Path::new(&data).join("models/tiny");
    let card = cinestream::model::card::ModelCard::parse(&std::fs::read(run.join("model/model.json")).unwrap(), "model.json").unwrap();
    let train = &card.lineage.selections[0];
    assert_eq!((train.role.as_str(), train.name.as_str()), ("train", format!("tiny_train_{images}").as_str()));
    assert!(train.tables.iter().any(|t| t.table == "frames" && t.version.is_some()), "{:?}", train.tables);
    assert_eq!(
        (card.input.size, card.classes.as_slice(), card.architecture.width),
        (size, &[0u8, 1, 2][..], 8),
        "the card says how to use the model"
    );
    assert_eq!(&std::fs::read(run.join("learning_curve.png")).unwrap()[1..4], b"PNG");
    let log = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(run.join("training_log.parquet")).unwrap()).unwrap();
    assert_eq!(parquet::file::reader::FileReader::metadata(&log).file_metadata().num_rows(), epochs as i64);
    // A second run of the same name is refused (it would overwrite the first).
    let (ok, _, err) = cli(&["-q", "train", &p, "--data", &data]);
    assert!(!ok && err.contains("--resume"), "{err}");
}

/// Every float parameter of a model, in visiting order.
struct Values(Vec<Vec<f32>>);
impl ModuleVisitor<Flex> for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Flex, D>>) {
        self.0.push(p.val().into_data().to_vec::<f32>().unwrap());
    }
}

async fn weights(run: &Path) -> Vec<Vec<f32>> {
    // The card builds the network: no configuration by hand.
    let (m, _card): (SegModel<Flex>, _) =
        cinestream::train::checkpoint::load_model(run.join("model").to_str().unwrap(), &Default::default(), &Default::default())
            .await
            .unwrap();
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}

#[tokio::test]
async fn a_killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = phantom_data(dir.path(), 5).await;
    // 64 images = 8 batches an epoch, 2 epochs, a checkpoint every 3 batches; validated on an
    // images-seen schedule (every 56 images, and after the first epoch) and stopped at 112 images.
    let schedule = "validate_every_images = 56\nmax_images = 112\n";
    let whole = pipeline_with(dir.path(), "whole", 64, 2, 64, 3, schedule);
    let (ok, _, err) = cli(&["-q", "train", &whole, "--data", &data]);
    assert!(ok, "{err}");

    let killed = pipeline_with(dir.path(), "killed", 64, 2, 64, 3, schedule);
    let latest = Path::new(&data).join("models/killed/checkpoints/latest.json");
    let mut child = spawn_quiet(&["-q", "train", &killed, "--data", &data]);
    let t = std::time::Instant::now();
    loop {
        let step = std::fs::read(&latest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["global_step"].as_u64());
        if step.is_some_and(|s| s >= 3) {
            break;
        }
        assert!(t.elapsed().as_secs() < 300, "no checkpoint within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&latest).unwrap()).unwrap();
    let step = saved["global_step"].as_u64().unwrap();
    assert!(step < 16 && !step.is_multiple_of(8), "killed at step {step}: should be mid-epoch");
    let (ok, out, err) = cli(&["train", &killed, "--data", &data, "--resume"]);
    assert!(ok, "{err}");
    assert!(out.contains("dice_lv="), "{out}");

    let (a, b) = (weights(&Path::new(&data).join("models/whole")).await, weights(&Path::new(&data).join("models/killed")).await);
    assert_eq!(a.len(), b.len());
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(differing, 0, "{differing} of {} parameter tensors differ after resuming", a.len());

    // The validation points: mid-epoch at 56 images, after the first epoch (64), and where the
    // run stopped (112, also due); the resumed run logged the same points with the same values.
    let log = |run: &str| {
        let f = std::fs::File::open(Path::new(&data).join(format!("models/{run}/training_log.parquet"))).unwrap();
        let batches: Vec<arrow::array::RecordBatch> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(f, 1024).unwrap().map(|b| b.unwrap()).collect();
        let col = |name: &str| crate::common::f64s(&batches, name);
        (crate::common::i64s(&batches, "images_seen"), crate::common::i64s(&batches, "epoch"), col("dice_lv"), col("train_loss"))
    };
    let (seen, epochs, dice, loss) = log("whole");
    assert_eq!(seen, [56, 64, 112]);
    assert_eq!(epochs, [0, 0, 1]);
    assert_eq!(log("killed"), (seen, epochs, dice, loss));
}

/// The same seed trains the same model whatever order the `labels` files hold their rows in
/// (`label` writes each study to whichever shard file is free, so two runs of it order the rows
/// differently): two prefixes with the same frames and the same masks of labeller `copy`, one
/// appended in key order and one reversed, train to equal weights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_labels_file_order_does_not_change_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut trained = Vec::new();
    for (name, reversed) in [("forward", false), ("reversed", true)] {
        let here = dir.path().join(name);
        let data = phantom_data(&here, 4).await;
        let mut masks = crate::evaluate::phantom_masks(&data).await;
        if reversed {
            masks.reverse();
        }
        crate::evaluate::add_labeller(&data, "copy", &masks.iter().map(|m| (m, m.mask.clone())).collect::<Vec<_>>()).await;
        // The tiny pipeline, learning labeller `copy` only.
        let pipeline = pipeline(&here, "order", 48, 1, 32, 0);
        let text = std::fs::read_to_string(&pipeline).unwrap().replace(r#"pool_split = "#, r#"labeller = "copy", pool_split = "#);
        std::fs::write(&pipeline, text).unwrap();
        let (ok, _, err) = cli(&["-q", "train", &pipeline, "--data", &data]);
        assert!(ok, "{name}: {err}");
        trained.push(weights(&Path::new(&data).join("models/order")).await);
    }
    assert!(trained[0] == trained[1], "the reversed labels trained another model");
}
