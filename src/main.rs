//! The `cinestream` command line: setup and dispatch. Each command lives in `cli/`, with its
//! arguments, help text and handler; the work is done by the library.

mod cli;

use anyhow::{Context, Result};
use clap::Parser;

use cinestream::store;

/// Exit status of a run stopped by a storage failure that may pass (EX_TEMPFAIL): a scheduler
/// retries it; every other failure needs a person and exits 1.
const EXIT_TRANSIENT: u8 = 75;

fn main() -> std::process::ExitCode {
    // Training and labelling free and reallocate megabyte tensors every step (BENCHMARKS.md,
    // "CPU training engine").
    cinestream_cpu_kernels::keep_freed_tensor_memory();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error chain, without a backtrace (users need the what and the how-to-fix;
            // RUST_BACKTRACE is for developers, via a debugger or logs).
            eprintln!("error: {}", error_chain(&e));
            if store::transient(e.as_ref()) {
                eprintln!(
                    "the storage service failed after retries; this may pass: run the same command again later (committed work is kept, a rerun does only what is missing)"
                );
                return std::process::ExitCode::from(EXIT_TRANSIENT);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Each cause of the chain once, joined by `: ` (our errors show a storage error's text with
/// a hint and keep it as their source, so its text would otherwise appear twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}

fn run() -> Result<()> {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli);
    // CPU work (parsing, curation, encoding) runs on blocking threads: keep that pool about the
    // size of the machine. More threads only add contention, and each can pin its own malloc
    // arena, which made peak memory grow with the data set (BENCHMARKS.md).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(cores + 1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(cli::dispatch(&cli))
}
