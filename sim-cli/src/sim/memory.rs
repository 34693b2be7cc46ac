//! How much memory a simulation needs, estimated from its parameters
//! before it runs, and how much the machine has: a run that cannot fit is
//! refused up front ([`Scenario::validate`](crate::Scenario::validate))
//! rather than aborting or swapping half-way.
//!
//! The costs were measured with `/usr/bin/time -f %M sim-cli simulate ...`
//! (peak resident memory) and rounded up; docs/simulation.md lists the runs.

use crate::sim::scenario::Scenario;

/// The process and its fixed structures.
const BASE: u64 = 16 << 20;
/// One node with the shared member list (measured 4.0 KB).
const PER_NODE: u64 = 5 << 10;
/// One member in one node's own member list, when nodes learn members
/// from a few seeds (`--seed-peers`; measured 35 bytes).
const PER_MEMBER_PER_NODE: u64 = 48;
/// One entry held by one node (measured 120 to 127 bytes).
const PER_ENTRY: u64 = 144;
/// One writer origin in one node's version vector, with what travels and
/// is kept per origin (measured about 33 bytes, from 10,000 nodes each
/// holding 10,000 origins in 3.26 GiB).
const PER_ORIGIN_PER_NODE: u64 = 40;
/// One write in the workload and the reference it is checked against
/// (measured 137 bytes).
const PER_WRITE: u64 = 160;

/// The peak memory `scenario` is estimated to need, in bytes; saturates
/// rather than overflowing.
pub(crate) fn estimate(scenario: &Scenario) -> u64 {
    let nodes = scenario.nodes as u64;
    let writes = scenario.writes as u64;
    let keys_held = (scenario.keys as u64).min(writes);
    let writers = nodes.min(writes);
    let members = match scenario.seed_peers {
        Some(_) => nodes
            .saturating_mul(nodes)
            .saturating_mul(PER_MEMBER_PER_NODE),
        None => 0,
    };
    BASE.saturating_add(nodes.saturating_mul(PER_NODE))
        .saturating_add(members)
        .saturating_add(
            nodes
                .saturating_mul(writers)
                .saturating_mul(PER_ORIGIN_PER_NODE),
        )
        .saturating_add(nodes.saturating_mul(keys_held).saturating_mul(PER_ENTRY))
        .saturating_add(writes.saturating_mul(PER_WRITE))
}

/// The memory the machine has available now (`MemAvailable` in
/// `/proc/meminfo`), if it can tell.
pub(crate) fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A byte count for people, in binary units: `512 B`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_the_run_and_never_overflow() {
        let small = Scenario::default();
        assert!(estimate(&small) < 64 << 20, "{}", human(estimate(&small)));
        let huge = Scenario {
            nodes: usize::MAX,
            writes: usize::MAX,
            keys: usize::MAX,
            seed_peers: Some(3),
            ..Scenario::default()
        };
        assert_eq!(estimate(&huge), u64::MAX);
        // The measured runs: 100 nodes holding 100,000 keys took 1.22 GiB.
        let entries = Scenario {
            nodes: 100,
            writes: 100_000,
            keys: 100_000,
            ..Scenario::default()
        };
        let estimate = estimate(&entries);
        assert!(
            (1_300 << 20..2_000 << 20).contains(&estimate),
            "{}",
            human(estimate)
        );
        // And 10,000 nodes, 10,000 writes: 3.26 GiB.
        let origins = Scenario {
            nodes: 10_000,
            writes: 10_000,
            ..Scenario::default()
        };
        let estimate = super::estimate(&origins);
        assert!(
            (3_300 << 20..5_000 << 20).contains(&estimate),
            "{}",
            human(estimate)
        );
        assert_eq!(human(1536 << 20), "1.5 GiB");
    }
}
