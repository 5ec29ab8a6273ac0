//! Notes derived from a run's figures: slow consumers accounted apart,
//! the connect rate, what adversarial agents tried. `sim run` and `sim
//! merge` both write them from their final figures.

use crate::context::ConnectSpan;
use crate::ledger::Ledger;

/// The notes of a run with this ledger, these connects and these slow
/// consumers' (expected, delivered) counts.
pub fn derived_notes(
    ledger: &Ledger,
    connects: Option<ConnectSpan>,
    slow_consumers: (u64, u64),
) -> Vec<String> {
    let mut notes = Vec::new();
    if slow_consumers != (0, 0) {
        let (expected, delivered) = slow_consumers;
        notes.push(format!(
            "slow consumers (made slow by a fault, accounted apart): {expected} expected, {delivered} delivered, {} lost under the bus's slow-consumer policy",
            expected.saturating_sub(delivered)
        ));
    }
    if let Some((span, rate)) = connects.and_then(|c| Some((c, c.rate()?))) {
        notes.push(format!(
            "connects: {} completed at {rate:.0}/s (first to last)",
            span.connects
        ));
    }
    let pubsub = ledger.class(crate::ledger::MessageClass::Pubsub);
    if pubsub.resumed > 0 {
        notes.push(format!(
            "resumes (topics with history): {} after reconnects, {} recovered ({} messages replayed; their outage is owed), {} not recovered ({} messages missed, as the bus counted them; their outage is not owed)",
            pubsub.resumed,
            pubsub.recovered,
            pubsub.replayed,
            pubsub.not_recovered,
            pubsub.missed
        ));
    }
    let security = ledger.security;
    if !security.is_empty() {
        notes.push(format!(
            "security: {} attempts to reach other workspaces or inboxes, {} refused, {} breaches; {} connections with bad tokens, {} refused with 401",
            security.attempts,
            security.denied,
            security.breaches,
            security.token_attempts,
            security.token_denied
        ));
        if security.floods > 0 {
            notes.push(format!(
                "security: {} subscription floods, {} refused with limit_exceeded (the bus's budgets)",
                security.floods, security.floods_refused
            ));
        }
    }
    notes
}
