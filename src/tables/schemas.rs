//! The Arrow schemas of every documented table, with a `description` per column (mirrored in
//! `schemas/<table>.json` and held against them by a test). The stages that fill a table keep its
//! rows and writers; the layer below them keeps what the table looks like.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// A column with its description (the `description` metadata every table schema carries).
pub fn f(name: &str, dt: DataType, nullable: bool, description: &str) -> Field {
    Field::new(name, dt, nullable).with_metadata([("description".to_string(), description.to_string())].into())
}

const STUDY_ID: &str = "Pseudonymous study id: the Kaggle id, or `s` + a keyed hash of StudyInstanceUID; `_a`, `_b`, … when a repeated complete stack was split";
const SPLIT: &str = "train / validate / test (Kaggle ids 1–500 / 501–700 / 701–1140, or the split folder); null when unknown";

fn geometry_fields(out: &mut Vec<Field>) {
    out.push(f("height", DataType::Int32, false, "Image rows after curation"));
    out.push(f("width", DataType::Int32, false, "Image columns after curation"));
    out.push(f("pixel_spacing_row_mm", DataType::Float64, false, "Distance between rows of the curated grid (mm)"));
    out.push(f("pixel_spacing_col_mm", DataType::Float64, false, "Distance between columns of the curated grid (mm)"));
    out.push(f(
        "slice_spacing_mm",
        DataType::Float64,
        false,
        "Empirical slice spacing: mode of the rounded differences of slice positions (mm), not SliceThickness",
    ));
}

fn study_id() -> Field {
    f("study_id", DataType::Utf8, false, STUDY_ID)
}

pub fn frames() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f(
        "source_study_id",
        DataType::Utf8,
        false,
        "Id of the input study this one came from (differs from study_id for split stacks)",
    ));
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("slice_index", DataType::Int32, false, "Slice position in the stack, 0 = most apical"));
    c.push(f("frame_index", DataType::Int32, false, "Time point in the cardiac cycle, ordered by TriggerTime, 0-based"));
    c.push(f(
        "slice_location_mm",
        DataType::Float64,
        false,
        "Position of the slice plane along the LV axis, increasing towards the apex (mm)",
    ));
    c.push(f("trigger_time_ms", DataType::Float64, true, "TriggerTime of the source image (ms after the R wave)"));
    geometry_fields(&mut c);
    c.push(f("slice_thickness_mm", DataType::Float64, true, "SliceThickness (mm), for reference only"));
    c.push(f("field_strength_t", DataType::Float64, true, "MagneticFieldStrength (T)"));
    c.push(f(
        "source_key",
        DataType::Utf8,
        false,
        "The source image (for a filled frame: the image it was copied from): its key from the Kaggle split or id folder on, or outside the Kaggle layout a keyed hash `o…` of its key (`cinestream key find` names the object)",
    ));
    c.push(f(
        "fill",
        DataType::Utf8,
        true,
        "null for an acquired image; `previous_frame` or `previous_slice` when the image was copied to fill a missing time point or slice",
    ));
    c.push(f("resampled", DataType::Boolean, false, "Whether the image was resampled (rotation, pixel spacing, size, down-scaling)"));
    c.push(f(
        "pixels",
        DataType::Binary,
        false,
        "Image: height × width unsigned 16-bit little-endian values, row-major, as stored (no rescale applied)",
    ));
    Arc::new(Schema::new(c))
}

pub fn labels() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("slice_index", DataType::Int32, false, "Slice position in the stack, 0 = most apical"));
    c.push(f("frame_index", DataType::Int32, false, "Time point in the cardiac cycle, 0-based"));
    c.push(f("labeller", DataType::Utf8, false, "Who made the mask: a model name, `manual`, or `phantom`"));
    geometry_fields(&mut c);
    c.push(f("lv_pixels", DataType::Int64, false, "Pixels labelled LV (1)"));
    c.push(f("my_pixels", DataType::Int64, false, "Pixels labelled MY (2)"));
    c.push(f("rv_pixels", DataType::Int64, false, "Pixels labelled RV (3)"));
    c.push(f("source_key", DataType::Utf8, false, "The source image the mask belongs to, named as in `frames.source_key`"));
    c.push(f("fill", DataType::Utf8, true, "null, or how the frame was filled (`previous_frame`, `previous_slice`)"));
    c.push(f("mask", DataType::Binary, false, "Mask: height × width u8, row-major; 0 background, 1 LV, 2 MY, 3 RV"));
    Arc::new(Schema::new(c))
}

pub fn studies() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("source_study_id", DataType::Utf8, false, "Id of the input study this one came from"));
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("n_slices", DataType::Int32, false, "Slices after curation"));
    c.push(f("n_frames", DataType::Int32, false, "Frames per slice: mode of CardiacNumberOfImages"));
    geometry_fields(&mut c);
    c.push(f("slice_thickness_mm", DataType::Float64, true, "Mode of SliceThickness (mm)"));
    c.push(f(
        "scale_factor",
        DataType::Float64,
        false,
        "Curated pixel spacing ÷ native pixel spacing (1 unless images over 256 px were scaled down)",
    ));
    c.push(f("field_strength_t", DataType::Float64, true, "MagneticFieldStrength (T)"));
    c.push(f("sex", DataType::Utf8, true, "PatientSex (M/F/O)"));
    c.push(f("age_years", DataType::Float32, true, "PatientAge in years"));
    c.push(f("truth_esv_ml", DataType::Float64, true, "True end-systolic volume from the truth CSVs (mL)"));
    c.push(f("truth_edv_ml", DataType::Float64, true, "True end-diastolic volume from the truth CSVs (mL)"));
    c.push(f("source_files", DataType::Int32, false, "Source files that became frames"));
    study_geometry_fields(&mut c);
    c.push(f(
        "dataset_ed_frame",
        DataType::Int32,
        true,
        "End-diastolic frame as the source dataset gives it (ACDC Info.cfg, the M&Ms CSV, a NIfTI ED copy); null for DICOM",
    ));
    c.push(f("dataset_es_frame", DataType::Int32, true, "End-systolic frame as the source dataset gives it; null for DICOM"));
    Arc::new(Schema::new(c))
}

/// The curated grid in patient coordinates (DICOM LPS, mm), so a volume can be rebuilt from the
/// tables alone: the centre of pixel (row r, column c) of slice k is
/// `origin + c·pixel_spacing_col_mm·orientation_row + r·pixel_spacing_row_mm·orientation_col +
/// (slice_location_mm[0] − slice_location_mm[k])·slice_direction`, which is
/// `k·slice_spacing_mm·slice_direction` for a regular stack. Null for studies ingested before
/// the columns existed (`cinestream upgrade` adds them to older tables).
pub const STUDY_GEOMETRY: [(&str, &str); 12] = [
    ("origin_x_mm", "Centre of pixel (row 0, column 0) of slice 0 (the most apical), patient x (LPS: towards the patient's left), mm"),
    ("origin_y_mm", "Same point, patient y (LPS: towards the back), mm"),
    ("origin_z_mm", "Same point, patient z (LPS: towards the head), mm"),
    ("orientation_row_x", "Unit vector along an image row (increasing column index), x: ImageOrientationPatient[0] of the curated grid"),
    ("orientation_row_y", "Unit vector along an image row, y: ImageOrientationPatient[1]"),
    ("orientation_row_z", "Unit vector along an image row, z: ImageOrientationPatient[2]"),
    ("orientation_col_x", "Unit vector down an image column (increasing row index), x: ImageOrientationPatient[3] of the curated grid"),
    ("orientation_col_y", "Unit vector down an image column, y: ImageOrientationPatient[4]"),
    ("orientation_col_z", "Unit vector down an image column, z: ImageOrientationPatient[5]"),
    ("slice_direction_x", "Unit vector from slice 0 towards slice 1 (apex → base, perpendicular to the image planes), x"),
    ("slice_direction_y", "Unit vector from slice 0 towards slice 1, y"),
    ("slice_direction_z", "Unit vector from slice 0 towards slice 1, z"),
];

fn study_geometry_fields(out: &mut Vec<Field>) {
    out.extend(STUDY_GEOMETRY.iter().map(|(name, about)| f(name, DataType::Float64, true, about)));
}

pub fn curation_log() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("problem", DataType::Utf8, false, "What was found: unreadable_file, non_parallel_plane, rotation, repeated_slice_location, repeated_stack, missing_slice, slice_spacing_outlier, slice_spacing_interspersed, missing_time_point, extra_time_points, pixel_spacing, image_size, image_size_gt_256, field_of_view, unusable_study, label_mismatch"));
    c.push(f(
        "resolution",
        DataType::Utf8,
        false,
        "What was done (quarantined, slice removed, rotated, study split, previous slice copied, …)",
    ));
    c.push(f("object_key", DataType::Utf8, true, "The object the finding is about, named as in `frames.source_key`"));
    c.push(f("detail", DataType::Utf8, false, "Specifics: positions, angles, sizes, reasons"));
    c.push(f("excluded_files", DataType::Int32, false, "Source files this finding removed from the output (quarantined or excluded)"));
    Arc::new(Schema::new(c))
}

pub fn label_qc() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("labeller", DataType::Utf8, false, "The labeller whose masks were checked (a `cinestream label --labeller` name)"));
    c.push(f("passed", DataType::Boolean, false, "Every check passed"));
    c.push(f("failures", DataType::Utf8, false, "The failed checks, comma-separated (empty when passed): class_missing, too_few_slices, slice_gap, lv_not_enclosed, implausible_volumes, ed_far_from_trigger"));
    c.push(f("ed_frame", DataType::Int32, true, "End-diastolic frame: maximum LV volume, ties → highest frame (null: no frames)"));
    c.push(f("es_frame", DataType::Int32, true, "End-systolic frame: minimum LV volume, ties → lowest frame"));
    c.push(f("edv_ml", DataType::Float64, false, "LV volume at ED (mL): LV pixels × pixel area × slice spacing / 1000"));
    c.push(f("esv_ml", DataType::Float64, false, "LV volume at ES (mL)"));
    c.push(f("ef_pct", DataType::Float64, true, "Ejection fraction 100 × (EDV − ESV) / EDV (%); null when EDV is 0"));
    c.push(f(
        "min_class_pixels",
        DataType::Int64,
        false,
        "Fewest pixels of a class the model labels, at ED or ES (check: ≥ min_class_pixels)",
    ));
    c.push(f("slices", DataType::Int32, false, "Slices of the study that were labelled"));
    c.push(f("slices_lv_my_ed", DataType::Int32, false, "Slices with both LV and MY at ED"));
    c.push(f("slices_lv_my_es", DataType::Int32, false, "Slices with both LV and MY at ES"));
    c.push(f(
        "lv_enclosed",
        DataType::Float64,
        true,
        "Share of the LV's boundary pixels (4-neighbourhood) that touch MY, at ED and ES; null without LV",
    ));
    c.push(f("model_sha256", DataType::Utf8, false, "SHA-256 of the model file that made the masks"));
    c.push(f("run_id", DataType::Utf8, false, "The labelling run that wrote it"));
    Arc::new(Schema::new(c))
}

pub fn sources() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f(
            "source_study_id",
            DataType::Utf8,
            false,
            "Id of the input study (Kaggle id, or `s` + a keyed hash of StudyInstanceUID); one row per ingested source study",
        ),
        f(
            "fingerprint",
            DataType::Utf8,
            false,
            "SHA-256 over the study's source objects (relative key and SHA-256 of each), its truth volumes, labeller and curation settings; empty for studies upgraded from the manifest format",
        ),
        f(
            "listing_fingerprint",
            DataType::Utf8,
            false,
            "SHA-256 over the listing of the study's objects (key, size, ETag): an unchanged listing is recognised without reading the objects",
        ),
        f("image_files", DataType::Int32, false, "Image files of the study in the input"),
        f(
            "study_ids",
            DataType::Utf8,
            false,
            "The study_id values written for it, comma-separated (several when a repeated stack was split; empty when nothing was usable)",
        ),
        f("run_id", DataType::Utf8, false, "The ingest run that wrote it"),
        f("ingested_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false, "When that run committed (UTC)"),
    ]))
}

/// A non-null column with its description.
fn nn(name: &str, dt: DataType, description: &str) -> Field {
    f(name, dt, false, description)
}

/// The table's schema, with a description per column.
pub fn training_log() -> SchemaRef {
    Arc::new(Schema::new(vec![
        nn("stage", DataType::Int32, "Stage of the recipe (one fit_one_cycle), 0-based"),
        nn("epoch", DataType::Int32, "Epoch within the stage, 0-based"),
        nn("global_epoch", DataType::Int32, "Epoch counted over the whole run, 0-based"),
        nn("steps", DataType::Int64, "Optimizer steps (batches) so far"),
        nn("images_seen", DataType::Int64, "Training images seen so far (the learning curve's x axis)"),
        nn("lr_max", DataType::Float64, "The stage's maximum learning rate (one-cycle)"),
        nn("frozen", DataType::Boolean, "Whether the encoder was frozen (its BatchNorm still trains)"),
        nn("train_loss", DataType::Float64, "Mean training loss over the epoch's batches"),
        nn("valid_loss", DataType::Float64, "Mean loss on the validation selection"),
        nn("dice_lv", DataType::Float64, "Validation Dice of LV, per image averaged (both empty = 1)"),
        nn("dice_my", DataType::Float64, "Validation Dice of MY, per image averaged (both empty = 1)"),
        nn("seconds", DataType::Float64, "Wall time of the run so far (s)"),
    ]))
}

/// `study_log`: one validation point of one run of a transfer-learning study — the run's
/// `training_log` row with the run named.
pub fn study_log() -> SchemaRef {
    let mut c = vec![
        nn("study", DataType::Utf8, "The study's name (`[study] name` of the pipeline file)"),
        nn("run", DataType::Utf8, "The run: `<start>_<subset>` (e.g. TL2_v3)"),
        nn(
            "start",
            DataType::Utf8,
            "Starting point: R (random weights), TL (ImageNet encoder), TL2 (a model trained on other data), or a declared start's name",
        ),
        nn(
            "subset",
            DataType::Utf8,
            "Training subset: full, v<k> (k whole volunteers), r<k> (as many random images), esed (ED and ES frames), r_esed (as many random images)",
        ),
        nn("subset_images", DataType::Int64, "Training images in the subset (N)"),
    ];
    c.extend(training_log().fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(c))
}

/// `study_runs`: one run of a transfer-learning study (a start trained on a subset), or a
/// start's untouched model (`subset` = `base`).
pub fn study_runs() -> SchemaRef {
    let dice = |what: &str, class: &str| format!("{what} Dice of {class} (per image averaged, an image empty in both masks scores 1)");
    let mut c = vec![
        nn("study", DataType::Utf8, "The study's name (`[study] name` of the pipeline file)"),
        nn("run", DataType::Utf8, "The run: `<start>_<subset>`"),
        nn("start", DataType::Utf8, "Starting point: R, TL, TL2, or a declared start's name"),
        nn("subset", DataType::Utf8, "Training subset (full, v<k>, r<k>, esed, r_esed), or `base` for the start's untouched model"),
        nn("subset_images", DataType::Int64, "Training images in the subset (N; 0 for base rows)"),
        nn("epochs_per_stage", DataType::Int32, "Epochs of each of the two stages: round(epochs · N_full / N)"),
        nn("images_seen", DataType::Int64, "Training images the run saw"),
        nn("seconds", DataType::Float64, "Wall time of the training (s)"),
        nn("model_url", DataType::Utf8, "The exported model: the last epoch's weights (its `model` folder)"),
    ];
    for class in ["lv", "my"] {
        let upper = class.to_uppercase();
        c.push(f(&format!("first_dice_{class}"), DataType::Float64, true, &dice("Validation, after the first epoch:", &upper)));
        c.push(f(&format!("peak_dice_{class}"), DataType::Float64, true, &dice("Validation, the highest logged:", &upper)));
        c.push(f(&format!("peak_images_{class}"), DataType::Int64, true, "Images seen at that peak"));
        c.push(f(
            &format!("smooth_peak_dice_{class}"),
            DataType::Float64,
            true,
            &format!("Validation: the highest value of a loess fit (span 0.75, degree 2) of Dice {upper} on images seen"),
        ));
        c.push(f(&format!("smooth_peak_images_{class}"), DataType::Int64, true, "Images seen at the smoothed peak"));
        c.push(f(
            &format!("final_dice_{class}"),
            DataType::Float64,
            true,
            &dice("Validation, the last point (the exported model):", &upper),
        ));
    }
    for class in ["lv", "my"] {
        let upper = class.to_uppercase();
        c.push(f(&format!("test_dice_{class}"), DataType::Float64, true, &dice("Test volunteers:", &upper)));
        c.push(f(
            &format!("test_dice_{class}_nonempty"),
            DataType::Float64,
            true,
            &format!("Test volunteers: mean Dice of {upper} over the images whose expert mask has {upper}"),
        ));
    }
    c.push(f("test_studies", DataType::Int64, true, "Test studies evaluated"));
    c.push(f("test_ef_error_mean", DataType::Float64, true, "Test: mean |EF error| in percentage points (not computable = 100)"));
    c.push(f("test_ef_error_median", DataType::Float64, true, "Test: median |EF error| (percentage points)"));
    c.push(f("test_edv_error_mean_ml", DataType::Float64, true, "Test: mean |EDV difference| against the expert masks' volumes (mL)"));
    c.push(f("test_esv_error_mean_ml", DataType::Float64, true, "Test: mean |ESV difference| against the expert masks' volumes (mL)"));
    Arc::new(Schema::new(c))
}

/// `study_subsets`: one training image of one subset of a transfer-learning study.
pub fn study_subsets() -> SchemaRef {
    Arc::new(Schema::new(vec![
        nn("study", DataType::Utf8, "The study's name (`[study] name` of the pipeline file)"),
        nn("subset", DataType::Utf8, "The subset: full, v<k>, r<k>, esed or r_esed"),
        f("study_id", DataType::Utf8, false, STUDY_ID),
        nn("slice_index", DataType::Int32, "Slice position in the stack, 0 = most apical"),
        nn("frame_index", DataType::Int32, "Time point in the cardiac cycle, 0-based"),
        nn("volunteer", DataType::Utf8, "The person: the source study (the halves of a split repeated stack are one volunteer)"),
        nn("image_rank", DataType::Int64, "1-based rank in the seed's permutation of all training images (r-subsets are its prefixes)"),
        nn("volunteer_rank", DataType::Int64, "1-based rank of the volunteer in the seed's volunteer order (v<k> takes ranks 1…k)"),
        nn("esed", DataType::Boolean, "Whether the image is an ED or ES frame of its study (the `volumes` rule)"),
    ]))
}

const EVAL_STUDY_ID: &str = "Pseudonymous study id (as in `studies`)";

/// `evaluation_images`: one row per image both labellers masked.
pub fn evaluation_images() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("study_id", DataType::Utf8, false, EVAL_STUDY_ID),
        f("slice_index", DataType::Int32, false, "Slice position in the stack, 0 = most apical"),
        f("frame_index", DataType::Int32, false, "Time point in the cardiac cycle, 0-based"),
        f("slice_position", DataType::Float64, false, "Relative slice position: 0 the most apical slice, 1 the most basal"),
        f("labeller", DataType::Utf8, false, "The labeller evaluated"),
        f("reference", DataType::Utf8, false, "The labeller it is compared with"),
        f("dice_lv", DataType::Float64, false, "Dice of LV (class 1); 1 when both masks have no LV"),
        f("dice_my", DataType::Float64, false, "Dice of MY (class 2); 1 when both masks have no MY"),
        f("lv_pixels", DataType::Int64, false, "LV pixels of the evaluated mask"),
        f("reference_lv_pixels", DataType::Int64, false, "LV pixels of the reference mask"),
        f("my_pixels", DataType::Int64, false, "MY pixels of the evaluated mask"),
        f("reference_my_pixels", DataType::Int64, false, "MY pixels of the reference mask"),
        f("lv_diff_ml", DataType::Float64, false, "(LV pixels − reference LV pixels) × pixel area × slice spacing / 1000 (mL)"),
        f("my_diff_ml", DataType::Float64, false, "(MY pixels − reference MY pixels) × pixel area × slice spacing / 1000 (mL)"),
    ]))
}

/// `evaluation_studies`: one row per study evaluated.
pub fn evaluation_studies() -> SchemaRef {
    let ml = |n: &str, d: &str| f(n, DataType::Float64, true, d);
    Arc::new(Schema::new(vec![
        f("study_id", DataType::Utf8, false, EVAL_STUDY_ID),
        f("split", DataType::Utf8, true, "train / validate / test, as in `studies`"),
        f("labeller", DataType::Utf8, false, "The labeller evaluated"),
        f("reference", DataType::Utf8, false, "The labeller it is compared with, or `truth` (the `truth` view's volumes)"),
        f("images", DataType::Int64, false, "Images both labellers masked (0 against the truth)"),
        ml("dice_lv_mean", "Mean per-image Dice of LV; null without images"),
        ml("dice_my_mean", "Mean per-image Dice of MY; null without images"),
        ml("edv_ml", "The labeller's end-diastolic volume (mL, `volumes`); null when it gave none"),
        ml("esv_ml", "The labeller's end-systolic volume (mL)"),
        ml("ef_pct", "The labeller's ejection fraction, 100 × (EDV − ESV) / EDV; null when EDV is 0 or missing"),
        f("ed_frame", DataType::Int64, true, "The labeller's ED frame (maximum LV volume, ties → highest frame)"),
        f("es_frame", DataType::Int64, true, "The labeller's ES frame (minimum LV volume, ties → lowest frame)"),
        ml("reference_edv_ml", "The reference's EDV (mL)"),
        ml("reference_esv_ml", "The reference's ESV (mL)"),
        ml("reference_ef_pct", "The reference's EF (%)"),
        f("reference_ed_frame", DataType::Int64, true, "The reference labeller's ED frame; null against the truth"),
        f("reference_es_frame", DataType::Int64, true, "The reference labeller's ES frame; null against the truth"),
        ml("edv_diff_ml", "EDV − reference EDV (mL)"),
        ml("esv_diff_ml", "ESV − reference ESV (mL)"),
        ml("ef_diff_pct", "EF − reference EF (percentage points)"),
        ml("edv_rel_diff", "(EDV − reference EDV) / reference EDV"),
        ml("esv_rel_diff", "(ESV − reference ESV) / reference ESV"),
        ml("ef_rel_diff", "(EF − reference EF) / reference EF"),
        f(
            "ef_error_pct",
            DataType::Float64,
            false,
            "|EF − reference EF| (percentage points); 100 when the labeller's EF cannot be computed",
        ),
        f("not_computable", DataType::Boolean, false, "Whether the labeller's EF cannot be computed (no volumes, or EDV 0)"),
        f(
            "good_ef_bad_volumes",
            DataType::Boolean,
            true,
            "|relative EF error| ≤ 10% while EDV or ESV is off by more than 20%; null when not computable",
        ),
    ]))
}
