//! The reconciled summary of an ingest run: what was listed, read, written, quarantined,
//! excluded and skipped, and the notes a user should read (what a NIfTI layout leaves out).

use std::collections::BTreeMap;

use serde::Serialize;

/// The reconciled summary of a run (also stored in each commit's info).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestReport {
    pub objects_listed: usize,
    /// Objects that are not images (CSV, Parquet, …), not read as images.
    pub side_files: usize,
    /// NIfTI dataset files that are not cine volumes: expert masks, ED/ES copies, `Info.cfg`,
    /// and files a layout does not read (see `notes`).
    pub dataset_files: usize,
    /// Image files considered.
    pub image_files: usize,
    /// Images beyond the first of each multi-frame file read: such a file counts once in
    /// `image_files` and once per frame in what it became (frames, quarantined, excluded).
    pub extra_frames: usize,
    /// Source files that became frames.
    pub frames_from_files: usize,
    /// Frames copied to fill a missing time point or slice.
    pub frames_filled: usize,
    pub files_quarantined: usize,
    /// Source files removed by curation rules (repeats, non-parallel planes, outliers, …).
    pub files_excluded: usize,
    /// Image files of studies not ingested again (already present, or changed and refused).
    pub files_skipped: usize,
    /// Image files of studies (and unreadable files) that are other workers' share (`--shard`).
    pub files_other_workers: usize,
    /// Source studies that are other workers' share.
    pub studies_other_workers: usize,
    /// This worker's share (`i/N`), when the work is split.
    pub share: Option<String>,
    /// Source studies in the input.
    pub studies_in: usize,
    /// The ids of this run's source studies (this worker's share), new or not (not stored in
    /// commits).
    #[serde(skip)]
    pub source_studies: Vec<String>,
    /// Curated studies written (a split stack counts twice).
    pub studies_written: usize,
    /// Source studies new to the tables.
    pub sources_new: usize,
    /// Source studies whose rows were replaced (`--replace`).
    pub sources_replaced: Vec<String>,
    /// Source studies already in the tables, with how they were recognised.
    pub sources_present: BTreeMap<String, String>,
    /// Source studies that changed since they were ingested and were left as they are.
    pub sources_refused: Vec<String>,
    pub label_rows: usize,
    /// Findings per problem class.
    pub findings: BTreeMap<String, usize>,
    /// Files quarantined or excluded, per reason (problem class or parse failure).
    pub excluded_by_reason: BTreeMap<String, usize>,
    pub bytes_read: u64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// The fingerprint of the pseudonym key that named studies outside the Kaggle layout (never
    /// the key); `None` when no id was a pseudonym.
    pub pseudonym_key: Option<String>,
    /// What a user should know about how the input was read (NIfTI layouts, what curation
    /// could not check, files not read).
    pub notes: Vec<String>,
    /// The application transaction id of the run's commits (empty when nothing was committed).
    pub app_id: String,
    /// Per table: the version committed, `already committed`, or `unchanged`.
    pub commits: BTreeMap<String, String>,
}

impl IngestReport {
    /// `image files = frames from files + quarantined + excluded`, or what differs.
    pub fn reconcile(&self) -> Result<(), String> {
        let rhs = self.frames_from_files + self.files_quarantined + self.files_excluded + self.files_skipped + self.files_other_workers;
        if self.image_files + self.extra_frames == rhs {
            Ok(())
        } else {
            Err(format!(
                "{} image files + {} frames beyond the first of multi-frame files ≠ {} frames from files + {} quarantined + {} excluded + {} skipped + {} other workers'",
                self.image_files,
                self.extra_frames,
                self.frames_from_files,
                self.files_quarantined,
                self.files_excluded,
                self.files_skipped,
                self.files_other_workers
            ))
        }
    }

    /// The human summary printed at the end of a run.
    pub fn render(&self) -> String {
        let mut s = format!(
            "ingest summary\n  objects listed        {}\n  side files (not read) {}\n{}  image files           {}{}\n    = frames written    {}\n    + quarantined       {}\n    + excluded          {}\n    + skipped           {} (studies already present or refused)\n  filled frames         {} (copies for missing time points / slices)\n  source studies        {} in: {} new, {} replaced, {} already present, {} changed and refused\n  studies written       {}\n  label rows            {}\n  throughput            {:.0} images/s, {:.1} MB/s over {:.1} s\n",
            self.objects_listed,
            self.side_files,
            if self.dataset_files > 0 {
                format!("  dataset files         {} (NIfTI masks, ED/ES copies, metadata, not-read files)\n", self.dataset_files)
            } else {
                String::new()
            },
            self.image_files,
            if self.extra_frames > 0 {
                format!(" + {} frames beyond the first of multi-frame files", self.extra_frames)
            } else {
                String::new()
            },
            self.frames_from_files,
            self.files_quarantined,
            self.files_excluded,
            self.files_skipped,
            self.frames_filled,
            self.studies_in,
            self.sources_new,
            self.sources_replaced.len(),
            self.sources_present.len(),
            self.sources_refused.len(),
            self.studies_written,
            self.label_rows,
            self.images_per_second,
            self.bytes_read as f64 / 1e6 / self.seconds.max(1e-9),
            self.seconds
        );
        if let Some(share) = &self.share {
            s.push_str(&format!(
                "    + other workers'    {} ({} studies are not worker {share}'s share)\n",
                self.files_other_workers, self.studies_other_workers
            ));
        }
        if !self.excluded_by_reason.is_empty() {
            s.push_str("  quarantined/excluded by reason\n");
            for (k, v) in &self.excluded_by_reason {
                s.push_str(&format!("    {k:<28} {v}\n"));
            }
        }
        if !self.findings.is_empty() {
            s.push_str("  findings (curation_log)\n");
            for (k, v) in &self.findings {
                s.push_str(&format!("    {k:<28} {v}\n"));
            }
        }
        if !self.sources_present.is_empty() {
            let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (study, why) in &self.sources_present {
                by_reason.entry(why.as_str()).or_default().push(study.as_str());
            }
            s.push_str("  already present (skipped)\n");
            for (why, studies) in by_reason {
                s.push_str(&format!("    {} ({why}): {}\n", studies.len(), abbreviate(&studies)));
            }
        }
        if !self.sources_refused.is_empty() {
            let ids: Vec<&str> = self.sources_refused.iter().map(String::as_str).collect();
            s.push_str(&format!("  CHANGED, NOT INGESTED  {} — rerun with --replace to swap their rows\n", abbreviate(&ids)));
        }
        if !self.notes.is_empty() {
            s.push_str("  notes\n");
            for n in &self.notes {
                s.push_str(&format!("    - {n}\n"));
            }
        }
        if self.commits.is_empty() {
            s.push_str("  commits               none (nothing new)\n");
        } else {
            s.push_str("  commits (Delta)\n");
            for (t, v) in &self.commits {
                s.push_str(&format!("    {t:<19} {v}\n"));
            }
        }
        s
    }
}

/// `a, b, c, … (n more)`.
pub(crate) fn abbreviate(ids: &[&str]) -> String {
    const SHOWN: usize = 12;
    let mut s = ids.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", ids.len() - SHOWN));
    }
    s
}
