//! `cinestream key`: the secret key behind pseudonymous study ids.

use anyhow::{Context, Result, bail};
use clap::Subcommand;

pub const HELP: &str = "\
Studies outside the Kaggle layout are grouped by StudyInstanceUID and named `s` + 16 hex digits
of HMAC-SHA256(key, UID), so no UID reaches an output, and nobody without the key can recompute
an id from a UID. The key is looked up in this order:
  CINESTREAM_PSEUDONYM_KEY        the key itself (at least 16 characters)
  CINESTREAM_PSEUDONYM_KEY_FILE   a file holding it (a Docker or Kubernetes secret)
  <config folder>/pseudonym.key   what `cinestream key create` writes (mode 0600)
The config folder is $CINESTREAM_CONFIG_DIR, else $XDG_CONFIG_HOME/cinestream, else
~/.config/cinestream: never beside the data. Without a key, such input is refused.

Each output prefix records the key's fingerprint (a hash, not the key) in
_cinestream/pseudonym_key.json and in its ingest commits; ingesting into it with another key is
refused, as the same study would get another id. Back the key up: it cannot be recovered.

EXAMPLES
  cinestream key create          # once per user or machine; prints the path and fingerprint
  cinestream key show            # which key a run would use, by fingerprint";

#[derive(Subcommand)]
pub enum KeyAction {
    /// Write a new random key to the config folder (refuses to replace one).
    Create,
    /// Say which key a run would use (its origin and fingerprint, never the key).
    Show,
}

pub fn run(action: &KeyAction) -> Result<()> {
    use cinestream::source::pseudonym;
    match action {
        KeyAction::Create => {
            let path = pseudonym::default_key_file().context("finding the config folder")?;
            let key = pseudonym::create(&path)?;
            println!("wrote a new pseudonym key to {} (fingerprint {})", path.display(), key.fingerprint());
            println!("back it up: every later ingest into an output made with it needs the same key");
        }
        KeyAction::Show => match pseudonym::resolve()? {
            Some(key) => println!("{} from {}", key.fingerprint(), key.origin()),
            None => bail!("no pseudonym key: {}", pseudonym::how_to_get_one()),
        },
    }
    Ok(())
}
