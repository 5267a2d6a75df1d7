//! Pipeline configuration: TOML files → typed, validated structs.
//!
//! Every struct denies unknown fields (a typo is an error, not a silently ignored setting) and
//! is checked by a pure `validate()` before anything touches storage. Command-line flags
//! override file values.

use serde::{Deserialize, Serialize};

use crate::ingest::IngestConfig;
use crate::store::StoreOptions;

/// Errors loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("pipeline file `{path}`: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A pipeline file: one section per command, and `[store]` for all of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Retries and timeouts of remote stores, for every command that uses this file.
    pub store: Option<StoreOptions>,
    pub ingest: Option<IngestConfig>,
    pub train: Option<crate::train::TrainConfig>,
    pub model: Option<crate::model::ModelConfig>,
    pub label: Option<crate::label::LabelConfig>,
    pub schedule: Option<crate::schedule::ScheduleConfig>,
    /// A transfer-learning study (`cinestream study`).
    pub study: Option<crate::study::config::StudyConfig>,
    pub run: Option<RunConfig>,
}

/// `[run]`: a whole pipeline as an ordered list of cinestream commands, run once in one process
/// by `cinestream run` (each step is what you would type after `cinestream`, so any step can be
/// rerun by hand).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The folder every step works in: `{work}` in a step's arguments (relative paths are
    /// relative to the current directory; `--work` overrides it).
    pub work: String,
    /// Other `{name}`s the steps use (data URLs, model paths); `cinestream run --set name=value`
    /// overrides them.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    #[serde(rename = "step")]
    pub steps: Vec<RunStep>,
}

/// One step of `[run]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunStep {
    /// What the step does, as the progress lines say it.
    pub name: String,
    /// The command and its arguments; `{work}` is the work folder, `{pipelines}` the folder of
    /// the pipeline file.
    pub args: Vec<String>,
}

impl RunConfig {
    /// The steps' arguments with the variables filled in (`{work}`, `{pipelines}`, and `vars`
    /// with `set` over them); refuses unknown variables and steps that would nest runs.
    pub fn resolved(&self, work: &str, pipelines: &str, set: &[(String, String)]) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        if self.steps.is_empty() {
            return Err(ConfigError::Invalid("[run] has no [[run.step]]".into()));
        }
        let mut vars = self.vars.clone();
        for (k, v) in set {
            if !vars.contains_key(k) {
                return Err(ConfigError::Invalid(format!(
                    "--set {k}: the pipeline has no variable `{k}` (it has: work{})",
                    vars.keys().map(|k| format!(", {k}")).collect::<String>()
                )));
            }
            vars.insert(k.clone(), v.clone());
        }
        vars.insert("work".into(), work.into());
        vars.insert("pipelines".into(), pipelines.into());
        let fill = |a: &str, step: &str| -> Result<String, ConfigError> {
            let mut out = a.to_string();
            for (k, v) in &vars {
                out = out.replace(&format!("{{{k}}}"), v);
            }
            if let Some(start) = out.find('{')
                && let Some(len) = out[start..].find('}')
                && out[start + 1..start + len].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && len > 1
            {
                return Err(ConfigError::Invalid(format!(
                    "step `{step}`: unknown variable `{}` (known: {})",
                    &out[start..=start + len],
                    vars.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            Ok(out)
        };
        self.steps
            .iter()
            .map(|s| {
                match s.args.first().map(String::as_str) {
                    None => return Err(ConfigError::Invalid(format!("step `{}` has no command", s.name))),
                    Some("run" | "schedule") => {
                        return Err(ConfigError::Invalid(format!("step `{}`: `{}` cannot be a step of a run", s.name, s.args[0])));
                    }
                    _ => {}
                }
                let args = s.args.iter().map(|a| fill(a, &s.name)).collect::<Result<_, _>>()?;
                Ok((s.name.clone(), args))
            })
            .collect()
    }
}

impl PipelineFile {
    pub fn load(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    /// Parses a pipeline file's text; `[store]` becomes the ingest section's store settings
    /// too (an `[ingest.store]` that says otherwise is an error: one place sets them).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut file: PipelineFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(store) = file.store.clone() {
            let sections = [("ingest", file.ingest.as_mut().map(|i| &mut i.store)), ("label", file.label.as_mut().map(|l| &mut l.store))];
            for (name, own) in sections {
                let Some(own) = own else { continue };
                if *own != StoreOptions::default() && *own != store {
                    return Err(format!("both [store] and [{name}.store] are set: keep [store], which applies to every command"));
                }
                *own = store.clone();
            }
        }
        Ok(file)
    }

    /// Checks every section the file has, without I/O: each stage's own `validate()`, and the
    /// `[run]` steps' variables.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let section = |name: &str, r: Result<(), String>| r.map_err(|e| ConfigError::Invalid(format!("[{name}] {e}")));
        if let Some(c) = &self.ingest {
            section("ingest", c.validate().map_err(|e| e.0))?;
        }
        if let Some(c) = &self.train {
            section("train", c.validate().map_err(|e| e.to_string()))?;
        }
        if let Some(c) = &self.model {
            section("model", c.validate())?;
        }
        if let Some(c) = &self.label {
            section("label", c.validate().map_err(|e| e.to_string()))?;
        }
        if let Some(c) = &self.schedule {
            section("schedule", c.validate())?;
        }
        if let Some(c) = &self.study {
            section("study", c.validate())?;
        }
        if let Some(r) = &self.run {
            r.resolved(&r.work, ".", &[])?;
        }
        Ok(())
    }

    /// The store settings of this file: `[store]`, else `[ingest.store]`, else the defaults.
    pub fn store(&self) -> StoreOptions {
        self.store.clone().or_else(|| self.ingest.as_ref().map(|i| i.store.clone())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped pipeline file parses and validates, and so does every shipped model
    /// contract (`pipelines/models/`); an empty or missing folder fails instead of passing.
    #[test]
    fn every_shipped_pipeline_and_contract_validates() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "toml") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut files = Vec::new();
        walk(&root, &mut files);
        let (mut pipelines, mut contracts) = (0, 0);
        for f in &files {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(f).unwrap();
            if f.parent().is_some_and(|p| p.ends_with("models")) {
                crate::model::contract::Contract::parse(&text, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
                contracts += 1;
            } else if f.parent().is_some_and(|p| p.ends_with("datasets")) {
                crate::source::nifti::classmap::ClassMap::parse(&text, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
                let stem = f.file_stem().unwrap().to_string_lossy();
                assert!(crate::source::nifti::classmap::SHIPPED.iter().any(|(n, _)| *n == stem), "{name} is not built in");
            } else {
                let file = PipelineFile::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                file.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
                pipelines += 1;
            }
        }
        assert!(pipelines >= 10 && contracts >= 3, "{pipelines} pipeline files and {contracts} contracts under {}", root.display());
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = toml::from_str::<PipelineFile>("[ingest]\ninput='a'\noutput='b'\nstudies_in_flite=3\n").unwrap_err();
        assert!(err.to_string().contains("studies_in_flite"), "{err}");
        let err = toml::from_str::<PipelineFile>("[ingest]\ninput='a'\noutput='b'\n[ingest.curation]\nmax_size=3\n").unwrap_err();
        assert!(err.to_string().contains("max_size"), "{err}");
    }

    #[test]
    fn store_settings_apply_to_every_command() {
        let f = PipelineFile::parse("[store]\nmax_retries = 9\n[ingest]\ninput='a'\noutput='b'\n").unwrap();
        assert_eq!(f.store().max_retries, 9);
        assert_eq!(f.ingest.unwrap().store.max_retries, 9);
        let only_ingest = PipelineFile::parse("[ingest]\ninput='a'\noutput='b'\n[ingest.store]\nmax_retries = 2\n").unwrap();
        assert_eq!(only_ingest.store().max_retries, 2);
        let both = PipelineFile::parse("[store]\nmax_retries = 9\n[ingest]\ninput='a'\noutput='b'\n[ingest.store]\nmax_retries = 2\n")
            .unwrap_err();
        assert!(both.contains("[store]"), "{both}");
        assert_eq!(PipelineFile::parse("[model]\n").unwrap().store(), StoreOptions::default());
    }
}
