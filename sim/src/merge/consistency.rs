//! What must hold before shards are merged: one scenario with one seed,
//! one shard count, and every index from 0 to n − 1 exactly once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::MergeError;
use super::load::LoadedShard;

/// Checks that `shards` are the complete set of shards of one run and
/// returns them ordered by index.
pub(super) fn complete_set(mut shards: Vec<LoadedShard>) -> Result<Vec<LoadedShard>, MergeError> {
    let Some(first) = shards.first() else {
        return Err(MergeError::NoShards);
    };
    let (name, hash, seed, count) = (
        first.report.scenario.name.clone(),
        first.report.scenario.content_hash.clone(),
        first.report.scenario.seed,
        first.record.count,
    );
    let first_dir = first.dir.clone();
    for shard in &shards {
        let s = &shard.report.scenario;
        if s.name != name || s.content_hash != hash || s.seed != seed {
            return Err(MergeError::DifferentRuns {
                first: first_dir.clone(),
                first_run: format!("{name} (seed {seed}, content hash {})", short(&hash)),
                other: shard.dir.clone(),
                other_run: format!(
                    "{} (seed {}, content hash {})",
                    s.name,
                    s.seed,
                    short(&s.content_hash)
                ),
            });
        }
        if shard.record.count != count {
            return Err(MergeError::DifferentCounts {
                first: first_dir.clone(),
                first_count: count,
                other: shard.dir.clone(),
                other_count: shard.record.count,
            });
        }
    }
    let mut by_index: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for shard in &shards {
        if let Some(earlier) = by_index.insert(shard.record.index, shard.dir.clone()) {
            return Err(MergeError::Duplicate {
                index: shard.record.index,
                count,
                first: earlier,
                second: shard.dir.clone(),
            });
        }
    }
    let missing: Vec<u32> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    shards.sort_by_key(|s| s.record.index);
    Ok(shards)
}

/// The first 12 hex digits of a content hash, enough to tell two apart.
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
