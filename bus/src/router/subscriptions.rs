//! The node's subscription index: which local sinks (agent connections, the
//! health checker) want which channels and patterns, and the single broker
//! subscription that serves them all.
//!
//! The node holds one broker subscription per channel or pattern that at
//! least one local sink wants: subscribed on the first, dropped after the
//! last, so Redis fans out once per node and the node fans out locally.
//! Broker changes go through one reconciler task that compares the index
//! with what the broker holds, so concurrent subscribes and unsubscribes of
//! the same name can never leave the two out of step, and changes arriving
//! together go to Redis as one command.

use std::any::Any;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::faults::DeliveryFaults;
#[cfg(feature = "test-faults")]
use super::faults::FaultInjector;
use super::gaps::{Before, Fresh, Gaps};
use crate::broker::{Broker, Delivery, Subscriber, Subscription};
use crate::limits::QuotaError;

/// Identifies one sink in the index (a connection, the health checker).
pub type SinkId = u64;

/// One delivery being fanned out, with a frame built at most once and shared
/// by every sink that asks for it.
pub struct Dispatched<'a> {
    /// What arrived from the broker.
    pub delivery: &'a Delivery,
    frame: OnceCell<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Dispatched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatched")
            .field("delivery", self.delivery)
            .finish_non_exhaustive()
    }
}

impl Dispatched<'_> {
    /// The outbound frame for this delivery; `build` runs for the first
    /// caller only, later callers asking for the same type get a clone of
    /// it (cheap for shared buffers such as `Bytes`).
    pub fn frame<T: Clone + Send + Sync + 'static>(&self, build: impl FnOnce(&Delivery) -> T) -> T {
        if let Some(frame) = self.frame.get().and_then(|f| f.downcast_ref::<T>()) {
            return frame.clone();
        }
        let frame = build(self.delivery);
        let _ = self.frame.set(Box::new(frame.clone()));
        frame
    }
}

/// Where a node delivers what it receives. Called on the dispatch task for
/// every delivery of a subscribed channel or pattern, so it must not block:
/// queue the frame (bounded) and return.
pub trait DeliverySink: Send + Sync {
    /// Takes one delivery of a channel or pattern this sink subscribed to.
    fn deliver(&self, dispatched: &Dispatched<'_>);
}

type Sinks = Vec<(SinkId, Arc<dyn DeliverySink>)>;

#[derive(Default)]
struct Index {
    channels: HashMap<String, Sinks>,
    patterns: HashMap<String, Sinks>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Channel,
    Pattern,
}

impl Index {
    fn map(&mut self, kind: Kind) -> &mut HashMap<String, Sinks> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    fn wants(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Channel => self.channels.contains_key(name),
            Kind::Pattern => self.patterns.contains_key(name),
        }
    }
}

struct Change {
    kind: Kind,
    name: String,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// The index plus its reconciler and dispatcher tasks.
pub(crate) struct LocalSubscriptions {
    index: Arc<RwLock<Index>>,
    /// Most distinct patterns held at once.
    max_patterns: usize,
    changes: mpsc::Sender<Change>,
    stop: CancellationToken,
    /// Told of names subscribed afresh, when gaps are filled.
    fresh: Option<Arc<Fresh>>,
}

impl fmt::Debug for LocalSubscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.index.read().expect("lock");
        f.debug_struct("LocalSubscriptions")
            .field("channels", &index.channels.len())
            .field("patterns", &index.patterns.len())
            .finish()
    }
}

impl Drop for LocalSubscriptions {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why a subscription call changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The broker refused or the reconciler is gone.
    #[error("the broker refused a subscription change: {0}")]
    Broker(String),
    /// The node's pattern budget is used up.
    #[error(transparent)]
    Quota(QuotaError),
}

impl LocalSubscriptions {
    /// Starts the reconciler and the dispatcher; with `history` (a broker
    /// to read topic histories from), the dispatcher fills gaps in topics'
    /// offsets ([`super::gaps`]).
    pub(crate) fn start(
        subscription: Subscription,
        faults: DeliveryFaults,
        max_patterns: usize,
        history: Option<Arc<dyn Broker>>,
    ) -> Self {
        let fresh = history.as_ref().map(|_| Arc::new(Fresh::default()));
        let gaps = history.zip(fresh.clone()).map(|(b, f)| Gaps::new(b, f));
        let index = Arc::new(RwLock::new(Index::default()));
        let (changes, change_rx) = mpsc::channel(4096);
        let stop = CancellationToken::new();
        tokio::spawn(reconcile(
            index.clone(),
            subscription.control,
            change_rx,
            stop.clone(),
        ));
        tokio::spawn(dispatch(
            index.clone(),
            subscription.deliveries,
            subscription.restored,
            stop.clone(),
            faults,
            gaps,
        ));
        Self {
            index,
            max_patterns,
            changes,
            stop,
            fresh,
        }
    }

    /// Adds `sink` to `names`; returns once the broker is subscribed to all
    /// of them.
    async fn add(
        &self,
        kind: Kind,
        id: SinkId,
        sink: &Arc<dyn DeliverySink>,
        names: &[String],
    ) -> Result<(), SubscriptionError> {
        let mut fresh = Vec::new();
        // The names this call gave `id`: taken back if the broker fails, so
        // a refused subscribe leaves no index entry and no budget behind.
        let mut added = Vec::new();
        {
            let mut index = self.index.write().expect("lock");
            let map = index.map(kind);
            if kind == Kind::Pattern {
                let unheld: HashSet<&String> =
                    names.iter().filter(|n| !map.contains_key(*n)).collect();
                if map.len() + unheld.len() > self.max_patterns {
                    return Err(SubscriptionError::Quota(QuotaError {
                        what: "distinct patterns",
                        per: "node",
                        max: self.max_patterns,
                    }));
                }
            }
            for name in names {
                let sinks = map.entry(name.clone()).or_default();
                if sinks.is_empty() {
                    if let Some(marks) = &self.fresh {
                        marks.mark(kind == Kind::Pattern, name);
                    }
                    fresh.push(name.clone());
                }
                if !sinks.iter().any(|(s, _)| *s == id) {
                    sinks.push((id, sink.clone()));
                    added.push(name.clone());
                }
            }
        }
        let confirmed = self.confirm(kind, fresh).await;
        if confirmed.is_err() {
            self.remove(kind, id, &added).await;
        }
        confirmed
    }

    /// Asks the broker for `fresh` names and waits until it has them.
    async fn confirm(&self, kind: Kind, fresh: Vec<String>) -> Result<(), SubscriptionError> {
        let mut confirmations = Vec::with_capacity(fresh.len());
        for name in fresh {
            let (done, confirmed) = oneshot::channel();
            self.send(Change {
                kind,
                name,
                done: Some(done),
            })
            .await?;
            confirmations.push(confirmed);
        }
        let mut outcome = Ok(());
        for confirmed in confirmations {
            // Every confirmation is awaited, so none is pending when the
            // caller takes the names back.
            let result = confirmed
                .await
                .map_err(|_| SubscriptionError::Broker("reconciler stopped".into()))
                .and_then(|r| r.map_err(SubscriptionError::Broker));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    /// Removes `id` from `names`; returns once the broker has dropped the
    /// names nobody on this node wants any more.
    async fn remove(&self, kind: Kind, id: SinkId, names: &[String]) {
        let emptied = self.unindex(kind, id, names);
        let mut confirmations = Vec::with_capacity(emptied.len());
        for name in emptied {
            let (done, confirmed) = oneshot::channel();
            let change = Change {
                kind,
                name,
                done: Some(done),
            };
            if self.send(change).await.is_ok() {
                confirmations.push(confirmed);
            }
        }
        for confirmed in confirmations {
            let _ = confirmed.await;
        }
    }

    /// Removes `id` from `names` in the index only, leaving the broker's
    /// subscriptions as they are: for a node shutting down, whose broker
    /// subscription ends with it (a broker change now would wait on a
    /// Redis that may be gone already).
    fn drop_from_index(&self, kind: Kind, id: SinkId, names: &[String]) {
        self.unindex(kind, id, names);
    }

    /// Removes `id` from `names` in the index; returns the names nobody on
    /// this node wants any more.
    fn unindex(&self, kind: Kind, id: SinkId, names: &[String]) -> Vec<String> {
        let mut emptied = Vec::new();
        let mut index = self.index.write().expect("lock");
        let map = index.map(kind);
        for name in names {
            if let Some(sinks) = map.get_mut(name) {
                sinks.retain(|(s, _)| *s != id);
                if sinks.is_empty() {
                    map.remove(name);
                    if let Some(marks) = &self.fresh {
                        marks.mark(kind == Kind::Pattern, name);
                    }
                    emptied.push(name.clone());
                }
            }
        }
        emptied
    }

    async fn send(&self, change: Change) -> Result<(), SubscriptionError> {
        self.changes
            .send(change)
            .await
            .map_err(|_| SubscriptionError::Broker("reconciler stopped".into()))
    }

    pub(crate) async fn subscribe(
        &self,
        id: SinkId,
        sink: &Arc<dyn DeliverySink>,
        channels: &[String],
    ) -> Result<(), SubscriptionError> {
        self.add(Kind::Channel, id, sink, channels).await
    }

    pub(crate) async fn psubscribe(
        &self,
        id: SinkId,
        sink: &Arc<dyn DeliverySink>,
        patterns: &[String],
    ) -> Result<(), SubscriptionError> {
        self.add(Kind::Pattern, id, sink, patterns).await
    }

    pub(crate) async fn unsubscribe(&self, id: SinkId, channels: &[String]) {
        self.remove(Kind::Channel, id, channels).await;
    }

    pub(crate) fn forget(&self, id: SinkId, channels: &[String]) {
        self.drop_from_index(Kind::Channel, id, channels);
    }

    pub(crate) async fn punsubscribe(&self, id: SinkId, patterns: &[String]) {
        self.remove(Kind::Pattern, id, patterns).await;
    }

    /// Channels and patterns the node currently holds for local sinks.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let index = self.index.read().expect("lock");
        (index.channels.len(), index.patterns.len())
    }
}

/// Most changes applied in one broker round trip.
const RECONCILE_BATCH: usize = 512;

/// The reconciler: applies batches of changes so that the broker holds
/// exactly the names the index wants, then confirms each change.
async fn reconcile(
    index: Arc<RwLock<Index>>,
    control: Arc<dyn Subscriber>,
    mut changes: mpsc::Receiver<Change>,
    stop: CancellationToken,
) {
    let mut held: HashSet<(Kind, String)> = HashSet::new();
    let mut batch = Vec::with_capacity(RECONCILE_BATCH);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            n = changes.recv_many(&mut batch, RECONCILE_BATCH) => n,
        };
        if received == 0 {
            return;
        }
        let plan = Plan::of(&index.read().expect("lock"), &held, &batch);
        let failures = plan.apply(control.as_ref(), &mut held).await;
        for change in batch.drain(..) {
            if let Some(done) = change.done {
                let _ = done.send(match failures.get(&change.kind) {
                    None => Ok(()),
                    Some(err) => Err(err.clone()),
                });
            }
        }
    }
}

/// What one batch of changes asks of the broker, per kind of name.
#[derive(Default)]
struct Plan {
    add: HashMap<Kind, Vec<String>>,
    drop: HashMap<Kind, Vec<String>>,
}

impl Plan {
    /// Compares what the index wants with what the broker `held`, for the
    /// names `batch` touched (each once, however often it changed).
    fn of(index: &Index, held: &HashSet<(Kind, String)>, batch: &[Change]) -> Self {
        let mut plan = Self::default();
        let mut seen = HashSet::new();
        for change in batch {
            let key = (change.kind, change.name.clone());
            if !seen.insert(key.clone()) {
                continue;
            }
            let wanted = index.wants(change.kind, &change.name);
            let holding = held.contains(&key);
            let side = match (wanted, holding) {
                (true, false) => &mut plan.add,
                (false, true) => &mut plan.drop,
                _ => continue,
            };
            side.entry(change.kind)
                .or_default()
                .push(change.name.clone());
        }
        plan
    }

    /// Applies the plan and updates `held`; returns, per kind, why adding
    /// failed. A failed drop is only logged: its names stay held, and the
    /// next change of the same name tries again.
    async fn apply(
        self,
        control: &dyn Subscriber,
        held: &mut HashSet<(Kind, String)>,
    ) -> HashMap<Kind, String> {
        let mut failures = HashMap::new();
        for (kind, names) in self.add {
            let result = match kind {
                Kind::Channel => control.subscribe(&names).await,
                Kind::Pattern => control.psubscribe(&names).await,
            };
            match result {
                Ok(()) => held.extend(names.into_iter().map(|n| (kind, n))),
                Err(err) => {
                    failures.insert(kind, err.to_string());
                }
            }
        }
        for (kind, names) in self.drop {
            let result = match kind {
                Kind::Channel => control.unsubscribe(&names).await,
                Kind::Pattern => control.punsubscribe(&names).await,
            };
            match result {
                Ok(()) => names.into_iter().for_each(|n| {
                    held.remove(&(kind, n));
                }),
                Err(err) => tracing::warn!(cause = %err, "broker unsubscribe failed"),
            }
        }
        failures
    }
}

/// Fans every delivery out to the local sinks that want it, after what
/// `gaps` finds missing before it. With the `test-faults` feature and
/// faults set, deliveries go through the [`FaultInjector`] instead; release
/// builds have no such branch.
async fn dispatch(
    index: Arc<RwLock<Index>>,
    mut deliveries: mpsc::Receiver<Delivery>,
    mut restored: watch::Receiver<u64>,
    stop: CancellationToken,
    faults: DeliveryFaults,
    mut gaps: Option<Gaps>,
) {
    #[cfg(feature = "test-faults")]
    let mut injector = FaultInjector::new(faults);
    #[cfg(not(feature = "test-faults"))]
    let _ = faults;
    // Until the broker says it cannot lose the subscription (its sender is
    // gone), a restored subscription starts a sweep.
    let mut watching = gaps.is_some();
    loop {
        let (filled, delivery) = tokio::select! {
            _ = stop.cancelled() => return,
            changed = restored.changed(), if watching => {
                match (changed, gaps.as_mut()) {
                    (Ok(()), Some(gaps)) => (gaps.sweep().await, None),
                    _ => {
                        watching = false;
                        continue;
                    }
                }
            }
            d = deliveries.recv() => match (d, gaps.as_mut()) {
                (None, _) => return,
                (Some(d), None) => (Vec::new(), Some(d)),
                (Some(d), Some(gaps)) => match gaps.before(&d).await {
                    Before::Fill(filled) => (filled, Some(d)),
                    Before::Delivered => continue,
                },
            },
        };
        let index = index.read().expect("lock");
        for delivery in filled.iter().chain(delivery.iter()) {
            let dispatched = Dispatched {
                delivery,
                frame: OnceCell::new(),
            };
            let sinks = match &delivery.pattern {
                Some(p) => index.patterns.get(p),
                None => index.channels.get(&delivery.channel),
            };
            #[cfg(feature = "test-faults")]
            if let Some(injector) = injector.as_mut() {
                for (_, sink) in sinks.into_iter().flatten() {
                    let stranger = || stranger(&index, &delivery.channel);
                    injector.deliver(sink.as_ref(), &dispatched, stranger);
                }
                continue;
            }
            for (_, sink) in sinks.into_iter().flatten() {
                sink.deliver(&dispatched);
            }
        }
    }
}

/// A sink of some other inbox: an agent that never asked for a delivery on
/// `channel`, for misroute faults.
#[cfg(feature = "test-faults")]
fn stranger(index: &Index, channel: &str) -> Option<Arc<dyn DeliverySink>> {
    let (_, sinks) = index.channels.iter().find(|(name, sinks)| {
        name.as_str() != channel && name.starts_with("inbox:") && !sinks.is_empty()
    })?;
    Some(sinks[0].1.clone())
}
