//! A copy of the frames a run's agents write, for checks that read them
//! (a test decodes each with the bus's own decoder). Off in real runs:
//! nothing is copied unless a [`FrameLog`] is given.

use std::sync::Mutex;

/// The first frames agents wrote, up to a count and a byte budget; the
/// rest are only counted.
#[derive(Debug)]
pub struct FrameLog {
    kept: Mutex<Kept>,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Kept {
    frames: Vec<String>,
    bytes: usize,
    dropped: u64,
}

impl FrameLog {
    /// Keeps at most `max_frames` frames of `max_bytes` in all.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            kept: Mutex::new(Kept::default()),
            max_frames,
            max_bytes,
        }
    }

    /// Records one written frame (or counts it, once the log is full).
    pub fn record(&self, frame: &str) {
        let mut kept = self.kept.lock().expect("frame log lock");
        if kept.frames.len() < self.max_frames && kept.bytes + frame.len() <= self.max_bytes {
            kept.bytes += frame.len();
            kept.frames.push(frame.to_owned());
        } else {
            kept.dropped += 1;
        }
    }

    /// The frames kept so far, and how many were written past the limits.
    pub fn take(&self) -> (Vec<String>, u64) {
        let mut kept = self.kept.lock().expect("frame log lock");
        let dropped = kept.dropped;
        (std::mem::take(&mut kept.frames), dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_counts_what_it_no_longer_keeps() {
        let log = FrameLog::new(2, 1_000);
        for frame in ["a", "b", "c"] {
            log.record(frame);
        }
        assert_eq!(log.take(), (vec!["a".to_owned(), "b".to_owned()], 1));
        let log = FrameLog::new(10, 3);
        log.record("ab");
        log.record("cd");
        assert_eq!(log.take(), (vec!["ab".to_owned()], 1));
    }
}
