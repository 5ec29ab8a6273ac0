//! Changing a loaded scenario's load from the command line, without editing
//! its file: its length (`--duration`), its agent counts (`--scale-agents`)
//! and its message rates (`--scale-rate`). A scaled scenario is validated
//! again, and reports say how it was scaled.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::Scenario;
use super::validate;

/// How a run's scenario differs from its file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadScale {
    /// Every group's agent count was multiplied by this (rounded, at least
    /// one agent per group).
    pub agents: f64,
    /// Every group's message rate was multiplied by this.
    pub rate: f64,
    /// The phases (and the faults' instants) were stretched or shrunk to
    /// this length, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

impl Default for LoadScale {
    fn default() -> Self {
        Self {
            agents: 1.0,
            rate: 1.0,
            duration_s: None,
        }
    }
}

impl LoadScale {
    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }
}

impl Scenario {
    /// Applies `scale` and validates the result; the error names the field
    /// the scaling broke (e.g. a publisher whose rate became 0). Faults
    /// aimed at a group's agents hit as many agents, scaled alike.
    pub fn scale(&mut self, scale: &LoadScale) -> Result<(), String> {
        if !(scale.agents.is_finite() && scale.agents > 0.0) {
            return Err(format!("--scale-agents must be > 0, got {}", scale.agents));
        }
        if !(scale.rate.is_finite() && scale.rate >= 0.0) {
            return Err(format!("--scale-rate must be >= 0, got {}", scale.rate));
        }
        for group in &mut self.groups {
            let scaled = (f64::from(group.count) * scale.agents).round();
            group.count = scaled.clamp(1.0, f64::from(u32::MAX)) as u32;
            group.rate *= scale.rate;
        }
        for fault in &mut self.faults {
            if fault.group.is_some() {
                let scaled = (f64::from(fault.count) * scale.agents).round();
                fault.count = scaled.clamp(1.0, f64::from(u32::MAX)) as u32;
            }
        }
        if let Some(length) = scale.duration_s {
            self.stretch_to(Duration::from_secs_f64(length));
        }
        let issues = validate::validate(self);
        if issues.is_empty() {
            return Ok(());
        }
        let said: Vec<String> = issues
            .iter()
            .map(|issue| format!("{}: {}", issue.path, issue.message))
            .collect();
        Err(format!(
            "the scaled scenario is not valid: {}",
            said.join("; ")
        ))
    }

    /// Stretches or shrinks the phases to `length` in total, and moves the
    /// faults with them (a fault at 40% of the run stays at 40%).
    pub fn stretch_to(&mut self, length: Duration) {
        let total = self.total_duration().as_secs_f64();
        if total <= 0.0 {
            return;
        }
        let factor = length.as_secs_f64() / total;
        for phase in &mut self.phases {
            phase.duration.0 = phase.duration.0.mul_f64(factor);
        }
        for fault in &mut self.faults {
            fault.at.0 = fault.at.0.mul_f64(factor);
            fault.duration.0 = fault.duration.0.mul_f64(factor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "s"
[[phases]]
name = "a"
kind = "steady"
duration = "10s"
[[groups]]
name = "pubs"
count = 10
behaviour = "publisher"
rate = 4.0
[[groups]]
name = "subs"
count = 3
behaviour = "subscriber"
[[faults]]
kind = "slow_consumers"
at = "5s"
duration = "2s"
count = 3
group = "subs"
"#,
            "s.toml",
        )
        .unwrap()
    }

    #[test]
    fn scaling_multiplies_counts_and_rates_and_keeps_a_group_alive() {
        let mut s = scenario();
        s.scale(&LoadScale {
            agents: 0.25,
            rate: 0.5,
            duration_s: Some(5.0),
        })
        .unwrap();
        assert_eq!(s.groups[0].count, 3, "10 × 0.25 rounds to 3");
        assert_eq!(s.groups[1].count, 1, "never below one agent");
        assert_eq!(s.groups[0].rate, 2.0);
        assert_eq!(s.total_duration(), Duration::from_secs(5));
        assert_eq!(s.faults[0].count, 1, "the fault hits a scaled group");
        assert_eq!(s.faults[0].at.0, Duration::from_millis(2500));
    }

    #[test]
    fn a_scaling_that_breaks_a_rule_names_the_field() {
        let mut s = scenario();
        let err = s
            .scale(&LoadScale {
                rate: 0.0,
                ..LoadScale::default()
            })
            .unwrap_err();
        assert!(err.contains("groups[0].rate"), "{err}");
        let err = scenario()
            .scale(&LoadScale {
                agents: -1.0,
                ..LoadScale::default()
            })
            .unwrap_err();
        assert!(err.contains("--scale-agents"), "{err}");
    }

    #[test]
    fn stretching_moves_faults_with_the_phases() {
        let mut s = scenario();
        s.stretch_to(Duration::from_secs(20));
        assert_eq!(s.total_duration(), Duration::from_secs(20));
        assert_eq!(s.faults[0].at.0, Duration::from_secs(10));
        assert_eq!(s.faults[0].duration.0, Duration::from_secs(4));
    }
}
