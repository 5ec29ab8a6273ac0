//! Merging synthetic shards written exactly as `sim run` writes them:
//! histograms add up to the histogram of all samples, a cross-shard
//! delivery is owed once, what a shard could not vouch for stays so, and
//! incomplete or foreign sets are refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::{MergeError, merge_dirs};
use crate::drive::shard::{SHARD_FORMAT, ShardRecord};
use crate::exit;
use crate::ledger::AgentOutcome;
use crate::ledger::Evidence;
use crate::ledger::MessageClass;
use crate::ledger::{ChannelKey, Window};
use crate::metrics::{Operation, Recorder, RunMetrics, new_histogram};
use crate::report::{self, Report, RunInfo, ScenarioInfo};
use crate::scenario::Scenario;
use crate::verdict::trust::{self, Integrity, IntegrityStatus};
use crate::verdict::{Status, judge};

const SCENARIO: &str = r#"
name = "merge-test"
[[phases]]
name = "all"
kind = "steady"
duration = "3s"
[[groups]]
name = "subs"
count = 4
behaviour = "subscriber"
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 5.0
"#;

const START_US: u64 = 1_767_225_600_000_000;

fn scenario(seed: u64) -> Scenario {
    let mut s = Scenario::parse(SCENARIO, "merge-test.toml").unwrap();
    s.seed = seed;
    s
}

/// What one synthetic shard holds.
struct Shard {
    index: u32,
    count: u32,
    seed: u64,
    samples: Vec<u64>,
    evidence: Evidence,
    /// What the shard's own run said of its numbers.
    integrity: Integrity,
}

impl Shard {
    fn new(index: u32, count: u32) -> Self {
        Self {
            index,
            count,
            seed: 1,
            samples: Vec::new(),
            evidence: Evidence::default(),
            integrity: Integrity::default(),
        }
    }

    /// Writes the shard's report directory under `root`, as `sim run` does.
    fn write(&self, root: &Path) -> PathBuf {
        let dir = root.join(format!(
            "shard-{}-of-{}-seed-{}",
            self.index, self.count, self.seed
        ));
        let scenario = scenario(self.seed);
        let mut recorder = Recorder::new();
        for (i, us) in self.samples.iter().enumerate() {
            recorder.record(
                Operation::PublishDelivery,
                *us,
                Duration::from_millis(i as u64),
            );
            recorder.count_delivered(Duration::from_millis(i as u64));
        }
        let recorded = RunMetrics::from(recorder);
        let run = RunInfo::new(
            UNIX_EPOCH + Duration::from_micros(START_US),
            Duration::from_secs(3),
            "external: ws://127.0.0.1:1/ws/connect",
            "memory",
            1,
        );
        let info = ScenarioInfo::from_scenario(&scenario, "merge-test.toml");
        let mut report = Report::new(info, run, &recorded, judge(&recorded, &scenario.thresholds));
        report.integrity = self.integrity.clone();
        report::write_all(&report, &recorded, &dir).unwrap();
        let r = recorded.recorder();
        ShardRecord {
            format: SHARD_FORMAT,
            index: self.index,
            count: self.count,
            scenario,
            start_us: START_US,
            end_us: START_US + 3_000_000,
            start_at: true,
            agents: 3,
            connects: None,
            ledger: r.ledger().clone(),
            errors: r.error_kinds().clone(),
            series: r.series().to_vec(),
            evidence: self.evidence.clone(),
            queues: None,
            observations: Vec::new(),
        }
        .write(&dir)
        .unwrap();
        dir
    }
}

/// Deterministic latencies from 1 µs to ~20 s, spread over many buckets.
fn samples(n: u64) -> Vec<u64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + (x % 20_000) * (x % 1_000) + x % 7
        })
        .collect()
}

#[test]
fn merged_histograms_equal_one_histogram_of_all_samples() {
    let all_samples = samples(30_000);
    let mut shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3)).collect();
    // Uneven split: shard 0 gets every fifth sample, the others alternate.
    for (i, us) in all_samples.iter().enumerate() {
        let to = if i % 5 == 0 { 0 } else { 1 + i % 2 };
        shards[to].samples.push(*us);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = shards.iter().map(|s| s.write(tmp.path())).collect();
    let merged = merge_dirs(&dirs).unwrap();

    let mut expected: Histogram<u64> = new_histogram();
    for us in &all_samples {
        expected.record(*us).unwrap();
    }
    let got = merged
        .metrics
        .histogram(Operation::PublishDelivery)
        .unwrap();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got.min(), expected.min());
    assert_eq!(got.max(), expected.max());
    for q in (0..=1000).map(|q| f64::from(q) / 1000.0) {
        assert_eq!(
            got.value_at_quantile(q),
            expected.value_at_quantile(q),
            "quantile {q}"
        );
    }
    assert_eq!(got, &expected, "bucket by bucket");
    let summary = &merged.report.latencies[0].summary;
    assert_eq!(summary.count, all_samples.len() as u64);
    let delivered: u64 = merged.report.series.iter().map(|r| r.delivered).sum();
    assert_eq!(delivered, all_samples.len() as u64, "series added up");
    assert_eq!(merged.report.merged.as_ref().unwrap().shards, 3);
}

#[test]
fn a_message_sent_in_one_shard_and_received_in_another_is_owed_once() {
    let topic = ChannelKey::Topic {
        workspace: 0,
        topic: 0,
    };
    let mut publisher = Shard::new(0, 2);
    publisher.evidence = Evidence::gather(
        vec![AgentOutcome {
            sent: vec![(topic, START_US + 10), (topic, START_US + 20)],
            unconfirmed: Vec::new(),
            windows: Vec::new(),
        }],
        Vec::new(),
    );
    let mut subscriber = Shard::new(1, 2);
    let mut window = Window::new(vec![topic], false, START_US);
    window.count_delivery(false);
    subscriber.evidence = Evidence::gather(
        vec![AgentOutcome {
            sent: Vec::new(),
            unconfirmed: Vec::new(),
            windows: vec![window],
        }],
        vec![((3, 1), (700, 900))],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dirs = [publisher.write(tmp.path()), subscriber.write(tmp.path())];
    let merged = merge_dirs(&dirs).unwrap();
    let pubsub = merged.report.ledger.class(MessageClass::Pubsub);
    assert_eq!(
        (pubsub.expected, pubsub.delivered, pubsub.lost()),
        (2, 1, 1)
    );
    let last = merged.metrics.histogram(Operation::BroadcastLast).unwrap();
    assert_eq!((last.len(), last.max()), (1, 900));
    assert!(
        merged
            .report
            .notes
            .iter()
            .any(|n| n.contains("shared --start-at"))
    );
}

/// A shard whose simulator could not keep its schedule makes the merged
/// bad verdicts inconclusive, as it did its own, and one that failed its
/// check fails the merge: a merge never vouches for what a shard did not.
#[test]
fn what_a_shard_could_not_vouch_for_the_merge_does_not_either() {
    let mut saturated = Shard::new(0, 2);
    saturated.samples = samples(2_000);
    saturated.integrity.saturation = Some("its runtime woke its timers 16 ms late".into());
    let mut other = Shard::new(1, 2);
    other.samples = samples(2_000);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = [saturated.write(tmp.path()), other.write(tmp.path())];
    let merged = merge_dirs(&dirs).unwrap().report;
    assert_eq!(merged.integrity.status, IntegrityStatus::Inconclusive);
    assert!(
        merged
            .integrity
            .saturation
            .as_deref()
            .unwrap()
            .starts_with("shard 0: its runtime"),
        "{:?}",
        merged.integrity.saturation
    );
    let delivery = merged
        .verdicts
        .operation(Operation::PublishDelivery)
        .unwrap();
    assert!(delivery.status > Status::Healthy && delivery.inconclusive);
    assert_eq!(
        trust::exit_code(&merged.verdicts, &merged.integrity),
        exit::INCONCLUSIVE
    );

    let mut failed = Shard::new(1, 2);
    failed.integrity.findings = vec!["the bus read 3 frames, the agents wrote 5".into()];
    let tmp = tempfile::tempdir().unwrap();
    let dirs = [Shard::new(0, 2).write(tmp.path()), failed.write(tmp.path())];
    let merged = merge_dirs(&dirs).unwrap().report;
    assert_eq!(merged.integrity.status, IntegrityStatus::Failed);
    assert_eq!(
        merged.integrity.findings,
        ["shard 1: the bus read 3 frames, the agents wrote 5"]
    );
    assert_eq!(
        trust::exit_code(&merged.verdicts, &merged.integrity),
        exit::INTEGRITY
    );
}

fn refusal(shards: &[Shard]) -> MergeError {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = shards.iter().map(|s| s.write(tmp.path())).collect();
    merge_dirs(&dirs).expect_err("the merge must refuse")
}

#[test]
fn mismatched_shards_are_refused() {
    let other_seed = Shard {
        seed: 2,
        ..Shard::new(1, 2)
    };
    let e = refusal(&[Shard::new(0, 2), other_seed]).to_string();
    assert!(e.contains("seed 1") && e.contains("seed 2"), "{e}");
    assert!(
        e.contains("only shards of one scenario with one seed merge"),
        "{e}"
    );

    let e = refusal(&[Shard::new(0, 2), Shard::new(1, 3)]).to_string();
    assert!(
        e.contains("one of 2 shards") && e.contains("one of 3"),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = Shard::new(1, 3).write(tmp.path());
    let e = merge_dirs(&[dir.clone(), dir]).unwrap_err().to_string();
    assert!(e.starts_with("shard 1/3 given twice"), "{e}");

    let e = refusal(&[Shard::new(0, 3), Shard::new(2, 3)]).to_string();
    assert_eq!(e, "shard 1/3 missing: a merge needs every shard of the run");
    let e = refusal(&[Shard::new(1, 3)]).to_string();
    assert!(e.starts_with("shards 0/3, 2/3 missing"), "{e}");

    let not_a_shard = tempfile::tempdir().unwrap();
    let e = merge_dirs(&[not_a_shard.path().to_owned()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("report.json"), "{e}");
    assert!(matches!(merge_dirs(&[]), Err(MergeError::NoShards)));
}

#[test]
fn an_unsharded_run_is_not_a_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Shard::new(0, 2).write(tmp.path());
    std::fs::remove_file(dir.join("shard.json")).unwrap();
    let e = merge_dirs(&[dir]).unwrap_err().to_string();
    assert!(e.contains("shard.json") && e.contains("--shard i/n"), "{e}");
}

#[test]
fn the_scenario_round_trips_through_the_shard_record() {
    let s = Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/ci/smoke.toml"
    ))
    .unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let back: Scenario = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.content_hash(), s.content_hash());
    let mut secret = s.clone();
    secret.target.jwt_secret = Some("hunter2".to_owned());
    secret.target.redis_url = Some("redis://user:pw@127.0.0.1:6379/".to_owned());
    let redacted = serde_json::to_string(&ShardRecord::redact(&secret)).unwrap();
    assert!(
        !redacted.contains("hunter2") && !redacted.contains("pw@"),
        "{redacted}"
    );
}
