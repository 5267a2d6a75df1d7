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

Object keys are names too (sites name folders and files after patients). Outputs, logs and
errors call an object by its key from the Kaggle split or id folder on (`train/12/study/sax_5/
IM-0005-0001.dcm`; the folders above are left out), or outside the Kaggle layout by `o` + 16 hex
digits of HMAC-SHA256(key, its key) (`o3f…2a.dcm`); the scheduler calls inbox folders `d` + 16
hex digits; a multi-frame file's frame is `<name>#<frame>`. `cinestream key find` turns those
names back into objects (a frame into its file), for whoever holds the key and can list the
input.

EXAMPLES
  cinestream key create          # once per user or machine; prints the path and fingerprint
  cinestream key show            # which key a run would use, by fingerprint
  cinestream key find o3f9c0d2b7a41e5c8.dcm d81b2e0c4f9a7d6e3 --input s3://scanner/inbox";

#[derive(Subcommand)]
pub enum KeyAction {
    /// Write a new random key to the config folder (refuses to replace one).
    Create,
    /// Say which key a run would use (its origin and fingerprint, never the key).
    Show,
    /// Find the objects or folders of an input that outputs and logs name `o…` or `d…` (or by a
    /// Kaggle key): prints one `NAME<TAB>URL` line each, and fails if a name matches nothing.
    Find {
        /// Names from `source_key`, `object_key`, a done marker or a log line.
        #[arg(required = true)]
        names: Vec<String>,
        /// The input (or the scheduler's inbox) the names came from: path, file://, s3://.
        #[arg(long)]
        input: String,
        #[command(flatten)]
        store: super::args::StoreArg,
    },
}

pub async fn run(cli: &super::Cli, action: &KeyAction) -> Result<()> {
    use cinestream::source::pseudonym;
    match action {
        KeyAction::Find { names, input, store } => {
            let key = pseudonym::resolve()?.with_context(|| format!("no pseudonym key: {}", pseudonym::how_to_get_one()))?;
            let location = cinestream::store::open(input, &store.options()?)?;
            let found = cinestream::source::find_names(&location, &key, names).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&found)?);
            } else {
                for f in &found {
                    println!("{}\t{}", f.name, f.url);
                }
            }
            let missing: Vec<&String> = names.iter().filter(|n| !found.iter().any(|f| &f.name == *n)).collect();
            if !missing.is_empty() {
                bail!(
                    "not found under `{input}` with key {}: {} (was it another input, or another key?)",
                    key.fingerprint(),
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
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
