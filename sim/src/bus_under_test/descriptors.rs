//! The open-file budget: whether this process may open the sockets a run
//! needs, checked before connecting so a run fails up front with advice
//! instead of half-way with "too many open files".

use std::fmt;

use crate::scenario::TargetMode;

/// Descriptors kept free for everything that is not an agent socket:
/// listeners, Redis connections, log and report files, the runtime.
pub const DESCRIPTOR_MARGIN: u64 = 200;

/// The outcome of [`descriptor_budget`]: the figures and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorCheck {
    /// Agents this process will connect.
    pub agents: u64,
    /// How the bus runs: an embedded bus holds the server end of every
    /// agent's socket in this same process.
    pub mode: TargetMode,
    /// Descriptors the run needs here, margin included.
    pub needed: u64,
    /// The soft open-file limit after trying to raise it; `None` when it
    /// cannot be read (then the check passes: nothing is known to be wrong).
    pub limit: Option<u64>,
}

impl DescriptorCheck {
    /// The figures for `agents` agents under `limit`.
    pub fn new(agents: u64, mode: TargetMode, limit: Option<u64>) -> Self {
        let needed = agents
            .saturating_mul(descriptors_per_agent(mode))
            .saturating_add(DESCRIPTOR_MARGIN);
        Self {
            agents,
            mode,
            needed,
            limit,
        }
    }

    /// Whether the run fits under the limit.
    pub fn fits(&self) -> bool {
        self.limit.is_none_or(|limit| self.needed <= limit)
    }

    /// Why the run does not fit and what to do instead; `None` when it fits.
    pub fn problem(&self) -> Option<String> {
        if self.fits() {
            None
        } else {
            Some(self.to_string())
        }
    }
}

impl fmt::Display for DescriptorCheck {
    /// The explanation a user reads when a run does not fit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_agent = descriptors_per_agent(self.mode);
        let how = if self.mode == TargetMode::Embedded {
            " with an embedded bus"
        } else {
            ""
        };
        write!(
            f,
            "this run needs about {} open files in this process ({} agents × {per_agent}{how})",
            thousands(self.needed),
            thousands(self.agents),
        )?;
        let Some(limit) = self.limit else {
            return write!(f, "; the limit is unknown");
        };
        write!(f, " but the limit is {}", thousands(limit))?;
        if self.fits() {
            return Ok(());
        }
        if self.mode == TargetMode::Embedded {
            write!(f, ": use target.mode = \"spawn\", or shard the run")
        } else {
            write!(
                f,
                ": shard the run (sim run --shard i/n) or raise the open-file limit (ulimit -n)"
            )
        }
    }
}

/// Checks whether `agents` agent connections fit in this process's open-file
/// limit, first raising the soft limit as far as the hard limit allows.
pub fn descriptor_budget(agents: u64, mode: TargetMode) -> DescriptorCheck {
    let needed = DescriptorCheck::new(agents, mode, None).needed;
    let limit = match rlimit::increase_nofile_limit(needed) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::debug!(cause = %err, "cannot raise the open-file limit");
            rlimit::Resource::NOFILE
                .get()
                .ok()
                .map(|(soft, _hard)| soft)
        }
    };
    DescriptorCheck::new(agents, mode, limit)
}

/// Sockets per agent in this process: its own end, plus the server's end
/// when the bus is embedded.
fn descriptors_per_agent(mode: TargetMode) -> u64 {
    match mode {
        TargetMode::Embedded => 2,
        TargetMode::Spawn | TargetMode::External => 1,
    }
}

/// `20200` → `"20,200"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_200), "20,200");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn an_embedded_run_counts_two_descriptors_per_agent() {
        let check = DescriptorCheck::new(10_000, TargetMode::Embedded, Some(20_000));
        assert_eq!(check.needed, 20_200);
        assert!(!check.fits());
        assert_eq!(
            check.problem().unwrap(),
            "this run needs about 20,200 open files in this process (10,000 agents × 2 \
             with an embedded bus) but the limit is 20,000: use target.mode = \"spawn\", \
             or shard the run"
        );
    }

    #[test]
    fn a_spawned_bus_counts_one_and_advises_sharding() {
        let fits = DescriptorCheck::new(10_000, TargetMode::Spawn, Some(20_000));
        assert!(fits.fits());
        assert_eq!(fits.problem(), None);
        let too_many = DescriptorCheck::new(30_000, TargetMode::External, Some(20_000));
        assert!(too_many.problem().unwrap().contains("shard the run"));
        assert!(DescriptorCheck::new(u64::MAX, TargetMode::Spawn, None).fits());
    }

    #[test]
    fn the_budget_reads_this_process_limit() {
        let check = descriptor_budget(10, TargetMode::Embedded);
        assert!(check.limit.is_some_and(|limit| limit >= 220), "{check:?}");
        assert!(check.fits());
        let huge = descriptor_budget(u64::MAX / 4, TargetMode::Embedded);
        assert!(!huge.fits());
    }
}
