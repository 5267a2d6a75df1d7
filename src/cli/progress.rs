//! The progress bar a command draws on the terminal (none with `--json` or `--quiet`), as the
//! library's [`Progress`] sink.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Cli;
use cinestream::progress::Progress;

/// A bar labelled with what the command does (`ingest [====>   ] 120/480 images, 3/12 studies`).
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(cli: &Cli, what: &str) -> Arc<Bar> {
        if cli.json || cli.quiet {
            return Arc::new(Bar { bar: ProgressBar::hidden() });
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:32}}] {{pos}}/{{len}} {{msg}} {{per_sec}} eta {{eta}}"))
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Arc::new(Bar { bar })
    }

    /// Removes the bar (before the command prints its summary).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, total: u64, what: &str) {
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(what.to_string());
    }
    fn advance(&self, units: u64, note: &str) {
        self.bar.inc(units);
        if !note.is_empty() {
            self.bar.set_message(note.to_string());
        }
    }
    fn line(&self, text: &str) {
        self.bar.println(text);
    }
    fn committing(&self) {
        self.bar.set_message("committing the Delta tables");
    }
}
