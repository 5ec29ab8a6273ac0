//! The receiving side's windows: when an agent was subscribed to which
//! channels, opened at the bus's subscribe reply and ended when it leaves,
//! handed to the ledger when its session ends.

use super::Agent;
use crate::ledger::{ChannelKey, Window};

impl Agent<'_> {
    /// Opens a window on `channel` (or a pattern's channels) from `start_us`.
    pub(super) fn open_window(
        &mut self,
        channel: ChannelKey,
        pattern: Option<(&str, Vec<ChannelKey>)>,
        start_us: u64,
    ) {
        let index = self.listening.windows.len();
        match pattern {
            None => {
                self.listening
                    .windows
                    .push(Window::new(vec![channel], false, start_us));
                self.listening.exact.insert(channel, index);
            }
            Some((glob, channels)) => {
                self.listening
                    .windows
                    .push(Window::new(channels, true, start_us));
                self.listening.patterns.insert(glob.to_owned(), index);
            }
        }
    }

    /// Ends every open window now (an agent leaving keeps reading for a
    /// while: what arrives then is still recognised, and counted when it was
    /// sent inside the window).
    pub(super) fn end_windows(&mut self) {
        let now = self.now_us();
        let slow = self.ctx.faults.was_slow(self.plan.id);
        for w in &mut self.listening.windows {
            w.end_us.get_or_insert(now);
            w.slow |= slow;
        }
    }

    /// Ends the windows and hands them to the outcome (the session is
    /// over); a resuming agent parks those of its topics with history
    /// instead (see [`super::resume`]).
    pub(super) fn close_windows(&mut self) {
        self.end_windows();
        if self.group.resume {
            self.park_or_hand_over_windows();
        } else {
            self.outcome.windows.append(&mut self.listening.windows);
        }
        self.listening.exact.clear();
        self.listening.patterns.clear();
    }
}
