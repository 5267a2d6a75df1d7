//! Per-study leases in object storage: one worker at a time works on a study, and a study whose
//! worker died is taken over once its lease has expired.
//!
//! A lease only avoids wasted work; what makes a study's result exactly-once is the
//! application transaction id of its commits. So a lease may be lost (taken over while its
//! holder stalls) without harm beyond duplicated effort: the holder notices at its next renewal
//! and stops.
//!
//! **Expiry without trusting clocks.** A lease names its owner and a token that changes at every
//! write. Another worker counts a lease as expired when it has seen the same token for longer
//! than the lease's time to live *by its own clock* (as the DynamoDB lock client does), so clock
//! skew between machines cannot make a live lease look dead. A fresh worker therefore waits one
//! time to live before it takes over a dead worker's lease.
//!
//! **Two ways to write**, chosen by probing the store ([`probe`]):
//! - [`Mode::Conditional`] (S3, MinIO, Ceph RGW): one object per lease, created with a
//!   create-only put (`If-None-Match: *`) and renewed, released or taken over by a conditional
//!   overwrite (`If-Match` with the ETag last read). Ceph RGW compares `If-Match` without the
//!   quotes its own ETags carry, so the probe learns whether to send ETags quoted or bare.
//! - [`Mode::Generations`] (local folders, or servers without `If-Match`): create-only puts
//!   alone. A lease is a folder of numbered generations; every write (take, renew, take over,
//!   release) creates the next generation, and only one writer can create a given one.
//!
//! Lost replies are survived: a put whose reply was lost and that is retried finds its own token
//! in what it reads back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::store::{StoreLocation, explain};

mod probe;
pub use probe::probe;
use probe::put_in_folder;

/// Lease errors (storage failures; losing a race is not an error).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease `{object}`: {}", explain(source))]
    Store { object: String, source: object_store::Error },
    #[error("lease `{object}` is not a lease record ({source}): remove it")]
    Corrupt { object: String, source: serde_json::Error },
    /// The store answered a write without the ETag conditional leases need.
    #[error("lease `{object}`: {message}")]
    NoEtag { object: String, message: &'static str },
}

/// How leases are written on a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One object per lease, overwritten with `If-Match`; `bare_etags` sends ETags without quotes.
    Conditional { bare_etags: bool },
    /// Numbered generations, create-only puts alone.
    Generations,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Conditional { bare_etags: false } => f.write_str("conditional overwrite (If-Match)"),
            Mode::Conditional { bare_etags: true } => f.write_str("conditional overwrite (If-Match, ETags sent without quotes)"),
            Mode::Generations => f.write_str("generations (create-only puts)"),
        }
    }
}

/// What a lease object says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The worker holding it (`host:pid:random`).
    pub owner: String,
    /// Changes at every write.
    pub token: String,
    /// The holder's promise: renewed before this many seconds pass.
    pub ttl_s: f64,
    /// Released: anyone may take it at once.
    pub released: bool,
    /// Times it was taken from an expired holder.
    pub takeovers: u64,
    /// When it was written (the writer's clock; informative only).
    pub written: String,
}

/// A lease this worker holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub name: String,
    record: Record,
    /// Conditional mode: the ETag of our last write. Generations: unused.
    e_tag: Option<String>,
    /// Generations mode: the generation of our last write.
    generation: u64,
}

impl Lease {
    pub fn takeovers(&self) -> u64 {
        self.record.takeovers
    }
}

/// What an attempt to take a lease found.
#[derive(Debug)]
pub enum Taken {
    /// Free (new or released): now ours.
    Fresh(Lease),
    /// Expired in another worker's hands: now ours.
    TakenOver { lease: Lease, from: String },
    /// Another worker holds it.
    Busy { owner: String },
}

/// A lease that could not be renewed: another worker took it over.
#[derive(Debug, thiserror::Error)]
#[error("the lease on `{name}` was taken over by {by}: stopping this study's work (its commits are idempotent, so nothing is lost)")]
pub struct Lost {
    pub name: String,
    pub by: String,
}

/// Leases under one prefix, written by one worker.
pub struct Leases {
    root: StoreLocation,
    mode: Mode,
    ttl: Duration,
    owner: String,
    /// Leases seen held by others: name → (token, first seen).
    seen: Mutex<HashMap<String, (String, Instant)>>,
}

fn store_err(object: &Path) -> impl FnOnce(object_store::Error) -> LeaseError + '_ {
    move |source| LeaseError::Store { object: object.to_string(), source }
}

impl Leases {
    pub fn new(root: StoreLocation, mode: Mode, ttl: Duration, owner: String) -> Self {
        Leases { root, mode, ttl, owner, seen: Mutex::new(HashMap::new()) }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn record(&self, takeovers: u64, released: bool) -> Record {
        Record {
            owner: self.owner.clone(),
            token: crate::ids::random_hex(8),
            ttl_s: self.ttl.as_secs_f64(),
            released,
            takeovers,
            written: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// Whether `r` has been seen unchanged for longer than its time to live (by our clock).
    fn expired(&self, name: &str, r: &Record) -> bool {
        let mut seen = self.seen.lock().expect("lease observations");
        let now = Instant::now();
        let entry = seen.entry(name.to_string()).or_insert_with(|| (r.token.clone(), now));
        if entry.0 != r.token {
            *entry = (r.token.clone(), now);
        }
        now.duration_since(entry.1) > Duration::from_secs_f64(r.ttl_s.max(0.0))
    }

    fn forget(&self, name: &str) {
        self.seen.lock().expect("lease observations").remove(name);
    }

    /// Tries to take the lease `name`.
    pub async fn take(&self, name: &str) -> Result<Taken, LeaseError> {
        match self.mode {
            Mode::Conditional { .. } => self.take_conditional(name).await,
            Mode::Generations => self.take_generation(name).await,
        }
    }

    /// Renews a lease we hold (call more often than its time to live).
    pub async fn renew(&self, lease: &mut Lease) -> Result<Result<(), Lost>, LeaseError> {
        let next = Record { token: crate::ids::random_hex(8), written: chrono::Utc::now().to_rfc3339(), ..lease.record.clone() };
        self.rewrite(lease, next).await
    }

    /// Gives a lease up without finishing: another worker may take it at once.
    pub async fn release(&self, mut lease: Lease) -> Result<(), LeaseError> {
        let next =
            Record { token: crate::ids::random_hex(8), released: true, written: chrono::Utc::now().to_rfc3339(), ..lease.record.clone() };
        if let Err(lost) = self.rewrite(&mut lease, next).await? {
            tracing::debug!(%lost, "released a lease already taken over");
        }
        Ok(())
    }

    /// Removes a lease whose work is done (its done marker is written first, so whoever takes
    /// the name afterwards finds the work done).
    pub async fn remove(&self, name: &str) -> Result<(), LeaseError> {
        self.forget(name);
        match self.mode {
            Mode::Conditional { .. } => {
                let path = self.root.child(&format!("{name}.json"));
                match self.root.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(store_err(&path)(e)),
                }
            }
            Mode::Generations => {
                for (_, path) in self.generations(name).await? {
                    match self.root.store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(store_err(&path)(e)),
                    }
                }
                Ok(())
            }
        }
    }

    /// Removes a lease left behind by work that finished (a holder that died between writing
    /// its done marker and removing the lease) once it has expired.
    pub async fn remove_if_expired(&self, name: &str) -> Result<bool, LeaseError> {
        let current = match self.mode {
            Mode::Conditional { .. } => self.read_object(&self.root.child(&format!("{name}.json"))).await?.map(|(r, _)| r),
            Mode::Generations => self.latest_generation(name).await?.map(|(_, r)| r),
        };
        match current {
            Some(r) if r.released || self.expired(name, &r) => {
                self.remove(name).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Every lease name under the root.
    #[cfg(test)]
    async fn names(&self) -> Result<Vec<String>, LeaseError> {
        let metas: Vec<_> = self.root.store.list(Some(&self.root.prefix)).try_collect().await.map_err(store_err(&self.root.prefix))?;
        let mut names: Vec<String> = metas
            .iter()
            .filter_map(|m| {
                let rel = self.root.relative(&m.location);
                match self.mode {
                    Mode::Conditional { .. } => rel.strip_suffix(".json").map(str::to_string),
                    Mode::Generations => rel.rsplit_once('/').map(|(n, _)| n.to_string()),
                }
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    // --- conditional mode ---

    fn update_version(&self, e_tag: &str) -> UpdateVersion {
        let tag = match self.mode {
            Mode::Conditional { bare_etags: true } => e_tag.trim_matches('"').to_string(),
            _ => e_tag.to_string(),
        };
        UpdateVersion { e_tag: Some(tag), version: None }
    }

    async fn read_object(&self, path: &Path) -> Result<Option<(Record, Option<String>)>, LeaseError> {
        match self.root.store.get(path).await {
            Ok(r) => {
                let e_tag = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(store_err(path))?;
                let rec = serde_json::from_slice(&bytes).map_err(|source| LeaseError::Corrupt { object: path.to_string(), source })?;
                Ok(Some((rec, e_tag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(path)(e)),
        }
    }

    async fn put(&self, path: &Path, rec: &Record, mode: PutMode) -> Result<Result<Option<String>, object_store::Error>, LeaseError> {
        let body = PutPayload::from(serde_json::to_vec(rec).expect("a lease record serialises"));
        match put_in_folder(&self.root, path, body, mode).await {
            Ok(r) => Ok(Ok(r.e_tag)),
            Err(e @ (object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })) => Ok(Err(e)),
            Err(e) => Err(store_err(path)(e)),
        }
    }

    async fn take_conditional(&self, name: &str) -> Result<Taken, LeaseError> {
        let path = self.root.child(&format!("{name}.json"));
        let fresh = self.record(0, false);
        if let Ok(e_tag) = self.put(&path, &fresh, PutMode::Create).await? {
            return Ok(Taken::Fresh(Lease { name: name.into(), record: fresh, e_tag, generation: 0 }));
        }
        let Some((current, e_tag)) = self.read_object(&path).await? else {
            // Removed between our put and our read: try again at the next pass.
            return Ok(Taken::Busy { owner: "(just removed)".into() });
        };
        if current.token == fresh.token {
            // Our create landed; its reply was lost.
            return Ok(Taken::Fresh(Lease { name: name.into(), record: fresh, e_tag, generation: 0 }));
        }
        let takeover = !current.released;
        if takeover && !self.expired(name, &current) {
            return Ok(Taken::Busy { owner: current.owner });
        }
        let next = self.record(current.takeovers + u64::from(takeover), false);
        let Some(tag) = e_tag else {
            return Err(LeaseError::NoEtag { object: path.to_string(), message: "the store returned no ETag" });
        };
        let won = match self.put(&path, &next, PutMode::Update(self.update_version(&tag))).await? {
            Ok(e_tag) => Some(e_tag),
            Err(_) => match self.read_object(&path).await? {
                Some((r, e_tag)) if r.token == next.token => Some(e_tag),
                _ => None,
            },
        };
        self.forget(name);
        Ok(match won {
            Some(e_tag) => {
                let lease = Lease { name: name.into(), record: next, e_tag, generation: 0 };
                if takeover { Taken::TakenOver { lease, from: current.owner } } else { Taken::Fresh(lease) }
            }
            None => Taken::Busy { owner: "another worker (won the race)".into() },
        })
    }

    async fn rewrite(&self, lease: &mut Lease, next: Record) -> Result<Result<(), Lost>, LeaseError> {
        match self.mode {
            Mode::Conditional { .. } => {
                let path = self.root.child(&format!("{}.json", lease.name));
                let Some(tag) = lease.e_tag.clone() else {
                    return Err(LeaseError::NoEtag { object: path.to_string(), message: "no ETag from our last write" });
                };
                let e_tag = match self.put(&path, &next, PutMode::Update(self.update_version(&tag))).await? {
                    Ok(e_tag) => e_tag,
                    Err(_) => match self.read_object(&path).await? {
                        Some((r, e_tag)) if r.token == next.token => e_tag,
                        other => return Ok(Err(Lost { name: lease.name.clone(), by: other.map_or("(removed)".into(), |(r, _)| r.owner) })),
                    },
                };
                lease.e_tag = e_tag;
            }
            Mode::Generations => {
                let generation = lease.generation + 1;
                if let Err(lost) = self.create_generation(&lease.name, generation, &next).await? {
                    return Ok(Err(lost));
                }
                self.drop_generations_below(&lease.name, generation).await?;
                lease.generation = generation;
            }
        }
        lease.record = next;
        Ok(Ok(()))
    }

    // --- generations mode ---

    fn generation_path(&self, name: &str, generation: u64) -> Path {
        self.root.child(&format!("{name}/g{generation:012}.json"))
    }

    async fn generations(&self, name: &str) -> Result<Vec<(u64, Path)>, LeaseError> {
        let folder = self.root.child(name);
        let metas: Vec<_> = self.root.store.list(Some(&folder)).try_collect().await.map_err(store_err(&folder))?;
        let mut out: Vec<(u64, Path)> = metas
            .into_iter()
            .filter_map(|m| {
                let n = m.location.filename()?.strip_prefix('g')?.strip_suffix(".json")?.parse().ok()?;
                Some((n, m.location))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn latest_generation(&self, name: &str) -> Result<Option<(u64, Record)>, LeaseError> {
        // The newest generation may vanish under us (its holder dropped older ones, or finished):
        // read from the newest down.
        for (n, path) in self.generations(name).await?.into_iter().rev() {
            if let Some((r, _)) = self.read_object(&path).await? {
                return Ok(Some((n, r)));
            }
        }
        Ok(None)
    }

    /// Creates generation `n`; another writer's generation `n`, or any later one, means we lost.
    /// (A later one matters because generations below the newest are deleted: a create of a
    /// deleted generation succeeds, but its writer deleted it only after writing the next.)
    async fn create_generation(&self, name: &str, n: u64, rec: &Record) -> Result<Result<(), Lost>, LeaseError> {
        let path = self.generation_path(name, n);
        if self.put(&path, rec, PutMode::Create).await?.is_err() {
            return match self.read_object(&path).await? {
                Some((r, _)) if r.token == rec.token => Ok(Ok(())),
                other => Ok(Err(Lost { name: name.into(), by: other.map_or("(removed)".into(), |(r, _)| r.owner) })),
            };
        }
        if let Some((newest, r)) = self.latest_generation(name).await?
            && newest > n
        {
            return Ok(Err(Lost { name: name.into(), by: r.owner }));
        }
        Ok(Ok(()))
    }

    async fn drop_generations_below(&self, name: &str, keep: u64) -> Result<(), LeaseError> {
        for (n, path) in self.generations(name).await? {
            if n < keep {
                match self.root.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_err(&path)(e)),
                }
            }
        }
        Ok(())
    }

    async fn take_generation(&self, name: &str) -> Result<Taken, LeaseError> {
        let (generation, takeovers, from) = match self.latest_generation(name).await? {
            None => (0, 0, None),
            Some((n, r)) if r.released => (n + 1, r.takeovers, None),
            Some((n, r)) => {
                if !self.expired(name, &r) {
                    return Ok(Taken::Busy { owner: r.owner });
                }
                (n + 1, r.takeovers + 1, Some(r.owner))
            }
        };
        let rec = self.record(takeovers, false);
        if let Err(lost) = self.create_generation(name, generation, &rec).await? {
            return Ok(Taken::Busy { owner: lost.by });
        }
        self.forget(name);
        self.drop_generations_below(name, generation).await?;
        let lease = Lease { name: name.into(), record: rec, e_tag: None, generation };
        Ok(match from {
            Some(from) => Taken::TakenOver { lease, from },
            None => Taken::Fresh(lease),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases(url: &str, mode: Mode, ttl_ms: u64, owner: &str) -> Leases {
        Leases::new(crate::store::open(url, &Default::default()).unwrap(), mode, Duration::from_millis(ttl_ms), owner.into())
    }

    async fn exercise(url: &str, mode: Mode) {
        let (a, b) = (leases(url, mode, 150, "a"), leases(url, mode, 150, "b"));
        let Taken::Fresh(mut la) = a.take("s1").await.unwrap() else { panic!("a new lease is free") };
        assert!(matches!(b.take("s1").await.unwrap(), Taken::Busy { owner } if owner == "a"));
        // Renewed in time: never expires for b.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            a.renew(&mut la).await.unwrap().unwrap();
            assert!(matches!(b.take("s1").await.unwrap(), Taken::Busy { .. }), "{mode}");
        }
        // a stalls: b takes over after the time to live, and a learns it lost.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Taken::TakenOver { lease: mut lb, from } = b.take("s1").await.unwrap() else {
            panic!("an expired lease is taken over ({mode})")
        };
        assert_eq!((from.as_str(), lb.takeovers()), ("a", 1));
        let lost = a.renew(&mut la).await.unwrap().unwrap_err();
        assert_eq!(lost.by, "b");
        b.renew(&mut lb).await.unwrap().unwrap();
        // Released: free at once, not a takeover.
        b.release(lb).await.unwrap();
        let Taken::Fresh(la2) = a.take("s1").await.unwrap() else { panic!("a released lease is free ({mode})") };
        assert_eq!(la2.takeovers(), 1, "the count of takeovers is kept");
        assert_eq!(a.names().await.unwrap(), vec!["s1".to_string()]);
        a.remove("s1").await.unwrap();
        assert!(a.names().await.unwrap().is_empty(), "{mode}: removed");
        // A finished study's leftover lease goes once expired.
        let Taken::Fresh(_) = a.take("s2").await.unwrap() else { panic!() };
        assert!(!b.remove_if_expired("s2").await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(b.remove_if_expired("s2").await.unwrap());
        assert!(b.names().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn leases_exclude_expire_and_are_taken_over_in_both_modes() {
        exercise("memory://leases-c/l", Mode::Conditional { bare_etags: false }).await;
        exercise("memory://leases-g/l", Mode::Generations).await;
        let dir = tempfile::tempdir().unwrap();
        exercise(dir.path().to_str().unwrap(), Mode::Generations).await;
    }

    #[tokio::test]
    async fn many_takers_one_winner() {
        for mode in [Mode::Conditional { bare_etags: false }, Mode::Generations] {
            let url = format!("memory://race-{}/l", matches!(mode, Mode::Generations));
            let takers: Vec<Leases> = (0..8).map(|i| leases(&url, mode, 60_000, &format!("w{i}"))).collect();
            let results = futures::future::join_all(takers.iter().map(|l| l.take("s"))).await;
            let won = results.iter().filter(|r| matches!(r, Ok(Taken::Fresh(_)))).count();
            assert_eq!(won, 1, "{mode}");
        }
    }
}
