//! The delivery ledger: who was owed which message, and what arrived.
//!
//! - [`counts`](Ledger): the counters per [`MessageClass`] (expected,
//!   delivered, duplicated, out of order, misrouted) and of queues,
//!   connections and adversaries, as recorders keep and merge them.
//! - [`tracking`](ChannelKey): what a receiving agent keeps: per-stream
//!   order and duplicate detection, and its subscription [`Window`]s.
//! - [`evidence`](Evidence): what the agents hand back ([`AgentOutcome`]):
//!   every send instant and window, which a sharded run writes for `sim
//!   merge`.
//! - [`reconcile`]: expected against delivered from the evidence, and the
//!   queue class settled from the bus's own counts.
//!
//! Everything here is plain data and arithmetic: the agents fill it, the
//! run drivers reconcile it, the reports show it.

mod counts;
mod evidence;
mod reconcile;
mod tracking;

pub use counts::{
    ClassLedger, ConnectionLedger, Ledger, MessageClass, QueueLedger, SecurityLedger,
};
pub use evidence::{AgentOutcome, BroadcastArrivals, Evidence, SendTimes};
pub use reconcile::{Counting, QueueReading, Reconciled, reconcile, settle_queue};
pub use tracking::{Arrival, ChannelKey, StreamTracker, Streams, Window};
