//! Random identifiers: run ids in commit infos, lease owner tokens, secret keys.

use std::io::Read;

use sha2::{Digest, Sha256};

/// `n` random bytes from the operating system, as hex. Falls back to hashing the time, the
/// process and a counter where `/dev/urandom` cannot be read (identifiers only; keys use
/// [`os_random`], which fails instead).
pub fn random_hex(n: usize) -> String {
    match os_random(n) {
        Ok(b) => hex::encode(b),
        Err(_) => {
            static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seed = format!("{:?}{}{c}", std::time::SystemTime::now(), std::process::id());
            let mut out = String::new();
            let mut block = 0u32;
            while out.len() < 2 * n {
                out += &hex::encode(Sha256::digest(format!("{seed}/{block}").as_bytes()));
                block += 1;
            }
            out.truncate(2 * n);
            out
        }
    }
}

/// `n` bytes from the operating system's random source.
pub fn os_random(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// The id of one run of a command (12 hex digits), recorded in its commits.
pub fn run_id() -> String {
    random_hex(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_asked_length_and_differ() {
        let (a, b) = (random_hex(16), random_hex(16));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(run_id().len(), 12);
    }
}
