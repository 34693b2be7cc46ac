//! What a simulation runs: the cluster, the workload and the faults.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use transport_mem::Timing;

/// How the workload's writes are spread over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WritePattern {
    /// Every write before the first round.
    Burst,
    /// Writes spread evenly over the first `write_rounds` rounds.
    Steady,
    /// Every node writes one key of its own, all at the same instant before
    /// the first round (all-to-all); `writes` and `keys` are the node count.
    #[serde(rename = "each-node")]
    EachNode,
    /// One write on one random node before the first round: the
    /// single-update case.
    Single,
}

/// What a crash does to a node's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrashMode {
    /// The node loses everything and restarts empty under a new incarnation.
    Wipe,
    /// The node keeps its state and comes back as it was.
    Keep,
}

/// A complete, validated description of one simulation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Peers each node contacts per round.
    pub fanout: usize,
    /// Writes the workload issues.
    pub writes: usize,
    /// Distinct keys the writes choose from.
    pub keys: usize,
    /// Fraction of writes that are deletes.
    pub deletes: f64,
    /// How writes are spread over time.
    pub write_pattern: WritePattern,
    /// Rounds a steady workload spans.
    pub write_rounds: u64,
    /// The most rounds to run before giving up.
    pub rounds: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Size limit of one gossip message.
    pub max_message_bytes: usize,
    /// Gossip interval in ms of virtual time.
    pub interval_ms: u64,
    /// Lockstep or staggered ticks.
    pub timing: Timing,
    /// Seed peers each node starts with; `None` for all.
    pub seed_peers: Option<usize>,
    /// Rounds during which faults are active, from the first.
    pub fault_rounds: u64,
    /// Fraction of nodes unavailable at a time while faults are active.
    pub unavailable: f64,
    /// Rounds between changes of the unavailable set.
    pub churn_rounds: u64,
    /// Probability per node and round of a crash while faults are active.
    pub crash_rate: f64,
    /// What a crash does to state.
    pub crash_mode: CrashMode,
    /// Rounds a crashed node stays down.
    pub crash_downtime: u64,
    /// Rounds `[start, end)` during which the cluster is split in two halves.
    pub partition: Option<(u64, u64)>,
    /// Message loss probability while faults are active.
    pub loss: f64,
    /// Message duplication probability while faults are active.
    pub duplicate: f64,
    /// Message reordering probability while faults are active.
    pub reorder: f64,
    /// Spread of node clock skews in ms (each node off by up to half).
    pub clock_skew_ms: u64,
    /// Largest accepted offset of a remote timestamp, in ms.
    pub max_clock_offset_ms: u64,
    /// Run with one driver thread per node and concurrent client threads,
    /// on wall-clock time, instead of the deterministic engine.
    pub threads: bool,
    /// Client threads writing and reading concurrently under `threads`.
    pub client_threads: usize,
    /// Peers each node contacts in a round that follows one in which it
    /// learned nothing new; `None`: always `fanout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_fanout: Option<usize>,
    /// Every optimisation of the exchange off: the base push-pull
    /// protocol, whole vectors both ways.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unoptimised: bool,
    /// Rounds a node may stay unheard from before it expires: the others
    /// collect without it and refuse it, and the run restarts it empty, as
    /// an operator would, losing what only it held. `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_rounds: Option<u64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            nodes: 100,
            fanout: 3,
            writes: 1_000,
            keys: 100,
            deletes: 0.1,
            write_pattern: WritePattern::Burst,
            write_rounds: 10,
            rounds: 200,
            seed: 0,
            max_message_bytes: 1 << 20,
            interval_ms: 1_000,
            timing: Timing::Lockstep,
            seed_peers: None,
            fault_rounds: 20,
            unavailable: 0.0,
            churn_rounds: 5,
            crash_rate: 0.0,
            crash_mode: CrashMode::Wipe,
            crash_downtime: 3,
            partition: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            clock_skew_ms: 0,
            max_clock_offset_ms: lww_crdt::DEFAULT_MAX_OFFSET_MS,
            threads: false,
            client_threads: 8,
            idle_fanout: None,
            unoptimised: false,
            retention_rounds: None,
        }
    }
}

/// A scenario setting out of range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// A count that must be positive is zero.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    /// A probability or fraction outside `[0, 1]`.
    #[error("--{name} must lie between 0 and 1, got {value}")]
    Probability {
        /// The flag.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A partition that ends before it starts.
    #[error("--partition {start}..{end} ends before it starts")]
    Partition {
        /// First round of the split.
        start: u64,
        /// Round it heals.
        end: u64,
    },
    /// Clock skew the cluster could not tolerate.
    #[error(
        "--clock-skew-ms {skew} exceeds --max-clock-offset-ms {offset}: nodes would refuse each other's writes"
    )]
    Skew {
        /// The skew spread.
        skew: u64,
        /// The accepted offset.
        offset: u64,
    },
    /// A message size too small for the version vectors the run will have.
    #[error(
        "--max-message-bytes {max} cannot hold a version vector of up to {writers} writers \
         (each takes up to 18 bytes, so at least {needed} bytes are needed)"
    )]
    MessageTooSmall {
        /// The size given.
        max: usize,
        /// Writers the run may have.
        writers: usize,
        /// The smallest size that fits their vector.
        needed: usize,
    },
    /// A fault the threaded engine cannot inject.
    #[error("--{0} is not available with --threads (it needs the deterministic engine)")]
    NotThreaded(&'static str),
    /// A fan-out of at least the cluster size.
    #[error("--fanout {fanout} must be below --nodes {nodes}")]
    Fanout {
        /// The fan-out.
        fanout: usize,
        /// The node count.
        nodes: usize,
    },
    /// Nodes that know no peer never send a message.
    #[error("--seed-peers 0: a node that knows no peer never sends a message; give at least 1")]
    NoSeedPeers,
    /// Latency so long that every exchange times out.
    #[error(
        "--latency-ms {latency_ms}: an exchange's round trip (2 x {latency_ms} ms) exceeds its \
         timeout (--interval-ms {interval_ms}), so every exchange would time out; keep the \
         latency at most half the interval"
    )]
    LatencyTooLong {
        /// The one-way latency.
        latency_ms: u64,
        /// The interval, which is the exchange timeout.
        interval_ms: u64,
    },
    /// A fault that lasts past the end of the run.
    #[error(
        "{fault} lasts until round {end}, but the run stops after --rounds {rounds}: it would end \
         under the fault and could not converge; give more --rounds, or end the fault sooner"
    )]
    FaultsOutlastRun {
        /// The flag and value.
        fault: String,
        /// The round the fault ends.
        end: u64,
        /// The round budget.
        rounds: u64,
    },
    /// A fault configured but never active.
    #[error("--{0} is set but --fault-rounds is 0, so it never applies")]
    FaultNeverApplies(&'static str),
    /// Every node unavailable at once.
    #[error(
        "--unavailable 1 takes every node down at once: no write could be taken; give less than 1"
    )]
    AllUnavailable,
    /// A run that would not fit in the machine's memory.
    #[error(
        "this run needs about {} of memory ({nodes} nodes, {writes} writes over {keys} keys), \
         more than the {} this machine has available; lower --nodes, --writes or --keys",
        crate::sim::memory::human(*needed), crate::sim::memory::human(*available)
    )]
    TooLarge {
        /// The estimate, in bytes.
        needed: u64,
        /// The machine's available memory, in bytes.
        available: u64,
        /// Nodes asked for.
        nodes: usize,
        /// Writes asked for.
        writes: usize,
        /// Keys asked for.
        keys: usize,
    },
}

impl Scenario {
    /// The peak memory this run is estimated to need, in bytes.
    pub fn estimated_memory(&self) -> u64 {
        crate::sim::memory::estimate(self)
    }

    /// Checks every setting, and that the run fits the machine's memory.
    ///
    /// # Errors
    /// The first [`ScenarioError`] found.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.validate_settings()?;
        let needed = crate::sim::memory::estimate(self);
        if let Some(available) = crate::sim::memory::available() {
            if needed > available {
                return Err(ScenarioError::TooLarge {
                    needed,
                    available,
                    nodes: self.nodes,
                    writes: self.writes,
                    keys: self.keys,
                });
            }
        }
        Ok(())
    }

    /// Checks every setting, whatever the machine.
    ///
    /// # Errors
    /// The first [`ScenarioError`] found.
    pub fn validate_settings(&self) -> Result<(), ScenarioError> {
        for (name, value) in [
            ("nodes", self.nodes as u64),
            ("fanout", self.fanout as u64),
            ("keys", self.keys as u64),
            ("rounds", self.rounds),
            ("interval-ms", self.interval_ms),
            ("write-rounds", self.write_rounds),
            ("churn-rounds", self.churn_rounds),
            ("crash-downtime", self.crash_downtime),
            ("idle-fanout", self.idle_fanout.map_or(1, |f| f as u64)),
        ] {
            if value == 0 {
                return Err(ScenarioError::Zero(name));
            }
        }
        for (name, value) in [
            ("deletes", self.deletes),
            ("unavailable", self.unavailable),
            ("crash-rate", self.crash_rate),
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ScenarioError::Probability { name, value });
            }
        }
        if let Some((start, end)) = self.partition {
            if end <= start {
                return Err(ScenarioError::Partition { start, end });
            }
        }
        if self.clock_skew_ms > self.max_clock_offset_ms {
            return Err(ScenarioError::Skew {
                skew: self.clock_skew_ms,
                offset: self.max_clock_offset_ms,
            });
        }
        // A digest carries the whole version vector, one entry per writer
        // origin: at most one per node (and per restart) that writes.
        let restarts = if self.crash_rate > 0.0 && self.crash_mode == CrashMode::Wipe {
            2
        } else {
            1
        };
        let writers = self.nodes.min(self.writes).saturating_mul(restarts);
        let needed = 256 + 18 * writers;
        if self.max_message_bytes < needed {
            return Err(ScenarioError::MessageTooSmall {
                max: self.max_message_bytes,
                writers,
                needed,
            });
        }
        if self.threads {
            if self.crash_rate > 0.0 {
                return Err(ScenarioError::NotThreaded("crash-rate"));
            }
            if self.reorder > 0.0 {
                return Err(ScenarioError::NotThreaded("reorder"));
            }
            if self.client_threads == 0 {
                return Err(ScenarioError::Zero("client-threads"));
            }
        }
        if self.nodes > 1 && self.fanout >= self.nodes {
            return Err(ScenarioError::Fanout {
                fanout: self.fanout,
                nodes: self.nodes,
            });
        }
        self.validate_meaning()
    }

    /// Refuses settings that are in range but cannot mean what was wanted.
    fn validate_meaning(&self) -> Result<(), ScenarioError> {
        if self.seed_peers == Some(0) {
            return Err(ScenarioError::NoSeedPeers);
        }
        if let Timing::Staggered { latency_ms } = self.timing {
            if latency_ms.saturating_mul(2) > self.interval_ms {
                return Err(ScenarioError::LatencyTooLong {
                    latency_ms,
                    interval_ms: self.interval_ms,
                });
            }
        }
        if self.unavailable >= 1.0 {
            return Err(ScenarioError::AllUnavailable);
        }
        let timed_faults = [
            ("unavailable", self.unavailable),
            ("crash-rate", self.crash_rate),
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ];
        for (name, value) in timed_faults {
            if value > 0.0 && self.fault_rounds == 0 {
                return Err(ScenarioError::FaultNeverApplies(name));
            }
        }
        if let Some((start, end)) = self.partition {
            if end >= self.rounds {
                return Err(ScenarioError::FaultsOutlastRun {
                    fault: format!("--partition {start}..{end}"),
                    end,
                    rounds: self.rounds,
                });
            }
        }
        if timed_faults.iter().any(|&(_, value)| value > 0.0) && self.fault_rounds >= self.rounds {
            return Err(ScenarioError::FaultsOutlastRun {
                fault: format!("--fault-rounds {}", self.fault_rounds),
                end: self.fault_rounds,
                rounds: self.rounds,
            });
        }
        Ok(())
    }

    /// Whether any fault is configured.
    pub fn has_faults(&self) -> bool {
        self.unavailable > 0.0
            || self.crash_rate > 0.0
            || self.partition.is_some()
            || self.loss > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
    }

    /// The round after which no fault is active.
    pub fn faults_end(&self) -> u64 {
        let mut end = 0;
        if self.unavailable > 0.0
            || self.crash_rate > 0.0
            || self.loss > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
        {
            end = self.fault_rounds;
        }
        if let Some((_, heal)) = self.partition {
            end = end.max(heal);
        }
        end
    }

    /// The round after which no write is issued.
    pub fn writes_end(&self) -> u64 {
        match self.write_pattern {
            WritePattern::Burst | WritePattern::EachNode | WritePattern::Single => 0,
            WritePattern::Steady => self.write_rounds,
        }
    }

    /// This scenario with the workload's counts made to match its pattern:
    /// `each-node` writes one key per node, `single` one key once, neither
    /// deletes.
    pub fn normalized(mut self) -> Scenario {
        match self.write_pattern {
            WritePattern::EachNode => {
                self.writes = self.nodes;
                self.keys = self.nodes;
                self.deletes = 0.0;
            }
            WritePattern::Single => {
                self.writes = 1;
                self.keys = 1;
                self.deletes = 0.0;
            }
            WritePattern::Burst | WritePattern::Steady => {}
        }
        self
    }

    /// The command line that replays this scenario exactly.
    pub fn command(&self) -> String {
        let mut cmd = format!(
            "sim-cli simulate --nodes {} --fanout {} --writes {} --keys {} --deletes {} \
             --write-pattern {} --write-rounds {} --rounds {} --seed {} --max-message-bytes {} \
             --interval-ms {}",
            self.nodes,
            self.fanout,
            self.writes,
            self.keys,
            self.deletes,
            match self.write_pattern {
                WritePattern::Burst => "burst",
                WritePattern::Steady => "steady",
                WritePattern::EachNode => "each-node",
                WritePattern::Single => "single",
            },
            self.write_rounds,
            self.rounds,
            self.seed,
            self.max_message_bytes,
            self.interval_ms,
        );
        if self.threads {
            let _ = write!(cmd, " --threads --client-threads {}", self.client_threads);
        }
        match self.timing {
            Timing::Lockstep => cmd.push_str(" --timing lockstep"),
            Timing::Staggered { latency_ms } => {
                let _ = write!(cmd, " --timing staggered --latency-ms {latency_ms}");
            }
        }
        if let Some(seeds) = self.seed_peers {
            let _ = write!(cmd, " --seed-peers {seeds}");
        }
        if self.has_faults() {
            let _ = write!(cmd, " --fault-rounds {}", self.fault_rounds);
        }
        if self.unavailable > 0.0 {
            let _ = write!(
                cmd,
                " --unavailable {} --churn-rounds {}",
                self.unavailable, self.churn_rounds
            );
        }
        if self.crash_rate > 0.0 {
            let _ = write!(
                cmd,
                " --crash-rate {} --crash-mode {} --crash-downtime {}",
                self.crash_rate,
                match self.crash_mode {
                    CrashMode::Wipe => "wipe",
                    CrashMode::Keep => "keep",
                },
                self.crash_downtime
            );
        }
        if let Some((start, end)) = self.partition {
            let _ = write!(cmd, " --partition {start}..{end}");
        }
        for (flag, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if value > 0.0 {
                let _ = write!(cmd, " --{flag} {value}");
            }
        }
        if self.clock_skew_ms > 0 {
            let _ = write!(cmd, " --clock-skew-ms {}", self.clock_skew_ms);
        }
        if self.max_clock_offset_ms != lww_crdt::DEFAULT_MAX_OFFSET_MS {
            let _ = write!(cmd, " --max-clock-offset-ms {}", self.max_clock_offset_ms);
        }
        if let Some(idle) = self.idle_fanout {
            let _ = write!(cmd, " --idle-fanout {idle}");
        }
        if self.unoptimised {
            cmd.push_str(" --unoptimised");
        }
        if let Some(rounds) = self.retention_rounds {
            let _ = write!(cmd, " --retention-rounds {rounds}");
        }
        cmd
    }
}
