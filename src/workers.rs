//! Splitting work by study over N workers (`--shard i/N`), for batch systems that start one
//! process per index (a Kubernetes Indexed Job, a Slurm array, GNU parallel).
//!
//! Worker `i` of `N` takes the studies whose stable hash (SHA-256 of the study id) is `i` modulo
//! `N`, so every worker computes the same split from the same listing without talking to the
//! others, and a study always goes to the same worker. Overlapping or repeated workers are
//! safe: each worker's commits carry an application transaction id derived from its studies, so
//! a rerun commits nothing twice, and ingest skips studies already present.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Set by a Kubernetes Indexed Job in each pod: the worker's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// This worker's share of the studies: index `i` of `count` workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkShare {
    pub index: u32,
    pub count: u32,
}

impl WorkShare {
    /// Whether this worker takes `study`.
    pub fn owns(&self, study: &str) -> bool {
        let h = Sha256::digest(study.as_bytes());
        let v = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
        v % u64::from(self.count) == u64::from(self.index)
    }

    /// `i/N`, or `/N` (or `N`) with `i` from `JOB_COMPLETION_INDEX`.
    pub fn parse_with_env(text: &str, index_env: Option<&str>) -> Result<WorkShare, String> {
        let (i, n) = text.split_once('/').unwrap_or(("", text));
        let count: u32 = n.trim().parse().map_err(|_| format!("shard `{text}`: give i/N (e.g. 0/4), N a whole number"))?;
        let index_text = match (i.trim(), index_env) {
            ("", Some(env)) => env.trim().to_string(),
            ("", None) => return Err(format!("shard `{text}` has no index and {INDEX_ENV} is not set: give i/N")),
            (i, _) => i.to_string(),
        };
        let index: u32 = index_text.parse().map_err(|_| format!("shard index `{index_text}` is not a whole number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: the index must be below the count (0 … {})", count.saturating_sub(1)));
        }
        Ok(WorkShare { index, count })
    }
}

impl FromStr for WorkShare {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WorkShare::parse_with_env(s, std::env::var(INDEX_ENV).ok().as_deref())
    }
}

impl fmt::Display for WorkShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for WorkShare {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WorkShare {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_and_split_every_study_exactly_once() {
        assert_eq!(WorkShare::parse_with_env("2/4", None).unwrap(), WorkShare { index: 2, count: 4 });
        assert_eq!(WorkShare::parse_with_env("/4", Some("3")).unwrap(), WorkShare { index: 3, count: 4 });
        assert_eq!(WorkShare::parse_with_env("4", Some("1")).unwrap(), WorkShare { index: 1, count: 4 });
        assert_eq!(WorkShare::parse_with_env("0/3", Some("2")).unwrap().index, 0, "an explicit index wins");
        assert!(WorkShare::parse_with_env("4/4", None).unwrap_err().contains("below"));
        assert!(WorkShare::parse_with_env("/4", None).unwrap_err().contains(INDEX_ENV));
        assert!(WorkShare::parse_with_env("a/b", None).is_err());
        let n = 5;
        let shares: Vec<WorkShare> = (0..n).map(|i| WorkShare { index: i, count: n }).collect();
        let mut per = vec![0; n as usize];
        for s in 0..1000 {
            let id = format!("study-{s}");
            let owners: Vec<&WorkShare> = shares.iter().filter(|w| w.owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            per[owners[0].index as usize] += 1;
        }
        assert!(per.iter().all(|&c| (150..=250).contains(&c)), "balanced: {per:?}");
        let w: WorkShare = serde_json::from_str("\"1/3\"").unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"1/3\"");
    }
}
