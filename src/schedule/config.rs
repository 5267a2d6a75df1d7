//! `[schedule]` and its `[[schedule.job]]`s in a pipeline file.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::curate::CurationConfig;
use crate::label::Device;
use crate::label::qc::QcConfig;

/// The scheduler's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Serve `/metrics` and `/healthz` here (e.g. `0.0.0.0:9464`); none when absent.
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// A lease not renewed for this long is taken over by another worker.
    #[serde(default = "default_ttl")]
    pub lease_ttl_s: f64,
    /// How often a worker renews its lease (default: a third of the time to live).
    #[serde(default)]
    pub renew_every_s: Option<f64>,
    #[serde(rename = "job", default)]
    pub jobs: Vec<JobConfig>,
}

fn default_ttl() -> f64 {
    120.0
}

/// One scheduled job: label the new studies of an inbox with a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Names the job in logs, metrics, markers and leases (letters, digits, `_`, `-`).
    pub name: String,
    /// When to run: cron with 5 fields (minute …), 6 (second first) or `@hourly` and the like.
    pub cron: String,
    /// Where studies arrive: one folder per study (or per batch of studies) below this prefix.
    pub inbox: String,
    /// The data prefix with the tables.
    pub output: String,
    /// Where leases and done markers go (default `<output>/_schedule/<name>`).
    #[serde(default)]
    pub state: Option<String>,
    /// A folder is ready when nothing new arrived in it for this many seconds.
    #[serde(default = "default_quiet")]
    pub quiet_s: f64,
    /// Path parts below the inbox that name a folder (1: `inbox/<study>/…`; 2:
    /// `inbox/<site>/<study>/…`).
    #[serde(default = "default_depth")]
    pub drop_depth: usize,
    /// Move done folders here (same relative keys); they stay in the inbox when absent.
    #[serde(default)]
    pub move_to: Option<String>,
    /// Truth CSVs (Kaggle formats) for the studies' volumes.
    #[serde(default)]
    pub truth: Vec<String>,
    /// The model (our `model` folder, or an ONNX file with its contract).
    pub model: String,
    #[serde(default)]
    pub contract: Option<String>,
    /// Name written in `labels.labeller`.
    pub labeller: String,
    #[serde(default)]
    pub device: Device,
    /// Images per model call.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Record each study's |EF error| against the truth in its done marker and log line.
    #[serde(default)]
    pub evaluate: bool,
    /// Folders worked on per run at most (the rest wait for the next run); all when absent.
    #[serde(default)]
    pub max_drops_per_run: Option<usize>,
    #[serde(default)]
    pub curation: CurationConfig,
    #[serde(default)]
    pub qc: QcConfig,
}

fn default_quiet() -> f64 {
    300.0
}
fn default_depth() -> usize {
    1
}

impl ScheduleConfig {
    /// Checks the settings without I/O.
    pub fn validate(&self) -> Result<(), String> {
        if self.jobs.is_empty() {
            return Err("[schedule] has no [[schedule.job]]".into());
        }
        if self.lease_ttl_s.is_nan() || self.lease_ttl_s <= 0.0 {
            return Err(format!("lease_ttl_s = {} must be positive", self.lease_ttl_s));
        }
        if let Some(r) = self.renew_every_s
            && (r.is_nan() || r <= 0.0 || r >= self.lease_ttl_s)
        {
            return Err(format!("renew_every_s = {r} must be positive and below lease_ttl_s = {}", self.lease_ttl_s));
        }
        let mut names = std::collections::BTreeSet::new();
        for j in &self.jobs {
            j.validate()?;
            if !names.insert(&j.name) {
                return Err(format!("two jobs are named `{}`", j.name));
            }
        }
        Ok(())
    }

    pub fn renew_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.renew_every_s.unwrap_or(self.lease_ttl_s / 3.0))
    }
}

impl JobConfig {
    pub fn validate(&self) -> Result<(), String> {
        let job = &self.name;
        if job.is_empty() || !job.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            return Err(format!("job name `{job}`: use letters, digits, `_` and `-`"));
        }
        self.schedule().map_err(|e| format!("job `{job}`: cron `{}`: {e}", self.cron))?;
        if self.quiet_s.is_nan() || self.quiet_s < 0.0 {
            return Err(format!("job `{job}`: quiet_s = {} must not be negative", self.quiet_s));
        }
        if self.drop_depth == 0 {
            return Err(format!("job `{job}`: drop_depth must be at least 1"));
        }
        if self.max_drops_per_run == Some(0) {
            return Err(format!("job `{job}`: max_drops_per_run must be at least 1"));
        }
        if self.inbox.trim_end_matches('/') == self.output.trim_end_matches('/') {
            return Err(format!("job `{job}`: inbox and output must differ"));
        }
        self.curation.validate().map_err(|e| format!("job `{job}`: {e}"))?;
        self.qc.validate().map_err(|e| format!("job `{job}`: {e}"))
    }

    /// The parsed cron schedule.
    pub fn schedule(&self) -> Result<croner::Cron, String> {
        croner::Cron::from_str(&self.cron).map_err(|e| e.to_string())
    }

    /// Where this job's leases and markers go.
    pub fn state_url(&self) -> String {
        self.state.clone().unwrap_or_else(|| format!("{}/_schedule/{}", self.output.trim_end_matches('/'), self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<ScheduleConfig, String> {
        let text = format!(
            "[schedule]\nlease_ttl_s = 30\n[[schedule.job]]\nname = \"j\"\ncron = \"*/5 * * * *\"\ninbox = \"s3://raw/inbox\"\noutput = \"s3://cur/v1\"\nmodel = \"m.onnx\"\nlabeller = \"m\"\n{extra}"
        );
        let file = crate::config::PipelineFile::parse(&text)?;
        let s = file.schedule.ok_or("no schedule")?;
        s.validate()?;
        Ok(s)
    }

    #[test]
    fn jobs_parse_and_are_checked() {
        let s = parse("").unwrap();
        assert_eq!(s.jobs[0].state_url(), "s3://cur/v1/_schedule/j");
        assert_eq!(s.renew_every(), std::time::Duration::from_secs(10));
        assert!(parse("quiet_s = 1\ndrop_depth = 2\nevaluate = true\n").is_ok());
        assert!(parse("colour = 1\n").unwrap_err().contains("colour"));
        let e =
            parse("[[schedule.job]]\nname = \"j\"\ncron = \"* * * * *\"\ninbox = \"a\"\noutput = \"b\"\nmodel = \"m\"\nlabeller = \"m\"\n")
                .unwrap_err();
        assert!(e.contains("two jobs"), "{e}");
        let bad_cron = crate::config::PipelineFile::parse("[schedule]\n[[schedule.job]]\nname = \"x\"\ncron = \"every monday\"\ninbox = \"a\"\noutput = \"b\"\nmodel = \"m\"\nlabeller = \"m\"\n").unwrap().schedule.unwrap().validate().unwrap_err();
        assert!(bad_cron.contains("cron `every monday`"), "{bad_cron}");
        let six = crate::config::PipelineFile::parse("[schedule]\n[[schedule.job]]\nname = \"x\"\ncron = \"*/2 * * * * *\"\ninbox = \"a\"\noutput = \"b\"\nmodel = \"m\"\nlabeller = \"m\"\n").unwrap().schedule.unwrap();
        six.validate().unwrap();
        let cron = six.jobs[0].schedule().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:01Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(cron.find_next_occurrence(&t, false).unwrap().to_rfc3339(), "2026-12-02T10:00:02+00:00", "6 fields: seconds");
    }
}
