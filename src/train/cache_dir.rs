//! The local training cache's folders, one per prepared selection. A folder is written under a
//! name of its own (`<key>.partial-<random>`) and renamed into place once complete (with its
//! `ready.json`), so two processes preparing the same selection at once never write into one
//! folder, and no reader ever sees half a folder. The least recently used complete folders are
//! removed to keep the cache under its size limit; a partial folder is removed only once nothing
//! has written to it for an hour (a killed run's leftovers).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The file that marks a folder complete; its modification time is the folder's last use.
pub const READY: &str = "ready.json";

/// A partial folder untouched for this long belongs to no live run.
const PARTIAL_GRACE: Duration = Duration::from_secs(3600);

/// A fresh folder name to prepare `dir` under, beside it.
pub fn partial(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{name}.partial-{}", crate::ids::random_hex(4)))
}

fn is_partial(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n.to_string_lossy().contains(".partial-"))
}

/// Puts the complete folder `partial` in place as `dir`. When another process put the same
/// selection there first (the same key: the same rows in the same order), its folder is kept and
/// `partial` removed; a folder at `dir` without `ready.json` (an older version's leftover) is
/// replaced.
pub fn publish(partial: &Path, dir: &Path) -> std::io::Result<()> {
    if std::fs::rename(partial, dir).is_ok() {
        return Ok(());
    }
    if dir.join(READY).exists() {
        return std::fs::remove_dir_all(partial);
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(partial, dir)
}

/// Marks `dir` used now.
pub fn touch(dir: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(dir.join(READY)) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The newest modification time of `dir`'s files, and their total size.
fn newest_and_size(dir: &Path) -> (SystemTime, u64) {
    let files: Vec<std::fs::Metadata> =
        std::fs::read_dir(dir).map(|it| it.flatten().filter_map(|f| f.metadata().ok()).collect()).unwrap_or_default();
    let newest = files.iter().filter_map(|m| m.modified().ok()).max().unwrap_or(SystemTime::UNIX_EPOCH);
    (newest, files.iter().map(|m| m.len()).sum())
}

/// Removes the least recently used complete folders (never `keep`), and partial folders that
/// no run has written to for an hour, until the cache fits `limit`.
pub fn evict(root: &Path, limit: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let now = SystemTime::now();
    let mut dirs: Vec<(SystemTime, PathBuf, u64)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let (newest, size) = newest_and_size(&p);
            let used = std::fs::metadata(p.join(READY)).and_then(|m| m.modified());
            (used.unwrap_or(newest), p, size)
        })
        .collect();
    dirs.sort();
    let mut total: u64 = dirs.iter().map(|d| d.2).sum();
    for (used, path, size) in dirs {
        if total <= limit {
            break;
        }
        let in_progress = is_partial(&path) && now.duration_since(used).unwrap_or_default() < PARTIAL_GRACE;
        if path != keep && !in_progress {
            tracing::info!(dir = %path.display(), mb = size as f64 / 1e6, "cache full: removing the least recently used training data");
            let _ = std::fs::remove_dir_all(&path);
            total -= size;
        }
    }
    if total > limit {
        tracing::warn!(
            mb = total as f64 / 1e6,
            limit_mb = limit as f64 / 1e6,
            "the training data alone is larger than the cache limit (train.cache.max_mib)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &Path, files: &[(&str, usize)]) {
        std::fs::create_dir_all(path).unwrap();
        for (name, len) in files {
            std::fs::write(path.join(name), vec![0u8; *len]).unwrap();
        }
    }

    #[test]
    fn the_first_complete_folder_wins_and_partials_are_kept_while_written() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc");
        // Two preparations of one selection at once, each in its own partial folder.
        let (a, b) = (partial(&dir), partial(&dir));
        assert_ne!(a, b);
        folder(&a, &[("samples-0.parquet", 10), (READY, 1)]);
        folder(&b, &[("samples-0.parquet", 20), (READY, 1)]);
        publish(&a, &dir).unwrap();
        publish(&b, &dir).unwrap();
        assert_eq!(std::fs::metadata(dir.join("samples-0.parquet")).unwrap().len(), 10, "the first one's folder is kept");
        assert!(!a.exists() && !b.exists(), "no partial folder is left");
        // A leftover folder without ready.json is replaced.
        let old = root.path().join("old");
        folder(&old, &[("samples-0.parquet", 5)]);
        let c = partial(&old);
        folder(&c, &[("samples-0.parquet", 7), (READY, 1)]);
        publish(&c, &old).unwrap();
        assert_eq!(std::fs::metadata(old.join("samples-0.parquet")).unwrap().len(), 7);

        // Over the limit: a partial folder being written stays; an hour-old one goes, and so do
        // the least recently used complete folders, never `keep`.
        let busy = partial(&root.path().join("busy"));
        folder(&busy, &[("samples-0.parquet", 1000)]);
        let stale = partial(&root.path().join("stale"));
        folder(&stale, &[("samples-0.parquet", 1000)]);
        let hour_ago = SystemTime::now() - PARTIAL_GRACE - Duration::from_secs(60);
        std::fs::File::options().append(true).open(stale.join("samples-0.parquet")).unwrap().set_modified(hour_ago).unwrap();
        std::fs::File::options().append(true).open(old.join(READY)).unwrap().set_modified(hour_ago).unwrap();
        evict(root.path(), 100, &dir);
        assert!(busy.exists(), "a partial folder written just now is kept");
        assert!(!stale.exists(), "a partial folder untouched for an hour is removed");
        assert!(!old.exists(), "the least recently used complete folder is removed");
        assert!(dir.exists(), "`keep` is never removed");
    }
}
