//! Progress of long-running work, for whoever shows it: the command line draws a bar, the
//! scheduler and the tests pass [`Quiet`]. One small trait for every stage (ingest, labelling,
//! training, evaluation, export), so a stage says how far it is and knows nothing about bars.

/// Progress callbacks. Every method has an empty default.
pub trait Progress: Send + Sync {
    /// A phase is sized: `total` units of work (images, frames, training steps, studies),
    /// described by `what`. A later phase (a training stage) calls it again.
    fn start(&self, _total: u64, _what: &str) {}
    /// `units` more are done; `note` says where the work is ("3/10 studies", "loss 0.41"), or is
    /// empty.
    fn advance(&self, _units: u64, _note: &str) {}
    /// A line worth keeping above the bar (a training epoch's summary).
    fn line(&self, _text: &str) {}
    /// The work is done; the results are being committed.
    fn committing(&self) {}
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {}

/// Counts parts (studies) as they finish, for the `done/total` note of a stage whose units are
/// images or frames.
#[derive(Debug, Default)]
pub struct Parts {
    done: std::sync::atomic::AtomicUsize,
    total: usize,
}

impl Parts {
    pub fn new(total: usize) -> Self {
        Parts { done: 0.into(), total }
    }

    /// One more part is done: the note `"<done>/<total> <what>"`.
    pub fn done(&self, what: &str) -> String {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        format!("{done}/{} {what}", self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_count_up_to_their_total() {
        let p = Parts::new(2);
        assert_eq!(p.done("studies"), "1/2 studies");
        assert_eq!(p.done("studies"), "2/2 studies");
    }
}
