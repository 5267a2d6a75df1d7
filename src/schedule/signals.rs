//! How a scheduler stops: the first SIGTERM or Ctrl-C asks it to finish the folder in hand and
//! start no other; a second abandons that folder (nothing is half-committed) and releases its
//! lease. The count of signals so far (capped at 2) is what [`super::run`] watches.

use tokio::sync::watch;

/// Starts listening for SIGTERM and Ctrl-C; the receiver holds 0, then 1, then 2.
pub fn stop_on_signals() -> watch::Receiver<u8> {
    let (tx, rx) = watch::channel(0u8);
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let n = *tx.borrow() + 1;
            tracing::warn!(
                signal = n,
                "{}",
                if n == 1 { "stopping: finishing the folder in hand (signal again to abandon it)" } else { "stopping now" }
            );
            let _ = tx.send(n.min(2));
        }
    });
    rx
}
