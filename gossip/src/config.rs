//! Protocol configuration, validated when built.

use lww_crdt::{DEFAULT_MAX_OFFSET_MS, NodeId};

/// The most bytes any message may take on the wire, whatever the config says:
/// the decoder's hard allocation limit.
pub const HARD_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The smallest `max_message_bytes` accepted: room for a digest and one
/// modest entry.
pub const MIN_MAX_MESSAGE_BYTES: usize = 512;

/// The most exchanges a node opens at once with a peer it is pulling a cut
/// delta from (see [`ConfigBuilder::pull_depth`]): as many as the peer keeps
/// deltas in flight to one node.
pub const MAX_PULL_DEPTH: usize = 3;

/// The tick interval of [`Config::builder`].
const DEFAULT_TICK_INTERVAL_MS: u64 = 1_000;

/// The exchange timeout of [`Config::builder`].
const DEFAULT_EXCHANGE_TIMEOUT_MS: u64 = 3_000;

/// The fewest ticks between tombstone collections [`Config::for_interval`]
/// sets: a collection snapshots the node's vector and may walk its
/// tombstones, work not worth doing every tick.
const MIN_GC_EVERY_TICKS: u32 = 10;

/// How a [`Node`](crate::Node) gossips. Build one with [`Config::builder`],
/// or [`Config::for_interval`] for another tick interval or exchange
/// timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u32,
    pub(crate) address: String,
    pub(crate) fanout: usize,
    pub(crate) idle_fanout: Option<usize>,
    pub(crate) tick_interval_ms: u64,
    pub(crate) exchange_timeout_ms: u64,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_keys: Option<u64>,
    pub(crate) max_data_bytes: Option<u64>,
    pub(crate) pull_depth: usize,
    pub(crate) optimisations: Optimisations,
    pub(crate) max_clock_offset_ms: u64,
    pub(crate) suspect_after_failures: u32,
    pub(crate) down_after_failures: u32,
    pub(crate) probe_every_ticks: u32,
    pub(crate) gc_every_ticks: u32,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) join_before_writing: bool,
    pub(crate) founder: bool,
    pub(crate) seed: u64,
}

impl Config {
    /// A builder for node `id`, with defaults for everything else: a tick
    /// every second and exchanges given three seconds, as
    /// [`for_interval`](Self::for_interval)`(id, 1_000, 3_000)`.
    pub fn builder(id: NodeId) -> ConfigBuilder {
        Config::for_interval(id, DEFAULT_TICK_INTERVAL_MS, DEFAULT_EXCHANGE_TIMEOUT_MS)
    }

    /// A builder for node `id` that ticks every `tick_interval_ms` and
    /// counts an exchange unanswered after `exchange_timeout_ms` as failed,
    /// with the settings counted in ticks derived from those two so that
    /// [`build`](ConfigBuilder::build) accepts them, and defaults for
    /// everything else. Every caller that picks its own interval or timeout
    /// (a daemon's flags, a simulated cluster) starts here rather than
    /// re-deriving them.
    ///
    /// - Tombstones are collected every 10 ticks, or every so many more
    ///   that the collection period outlasts the exchange timeout: an
    ///   exchange still open could carry an older write.
    /// - One suspect or down peer is probed every 10 ticks; a peer is
    ///   suspect after 2 failed exchanges in a row and down after 4.
    ///
    /// `build` accepts the result whenever `id` fits in 32 bits, both
    /// durations are at least 1 ms, and the timeout is shorter than
    /// `u32::MAX` ticks (and than `u64::MAX` ms). Setting the interval or
    /// the timeout again on the builder derives nothing.
    pub fn for_interval(
        id: NodeId,
        tick_interval_ms: u64,
        exchange_timeout_ms: u64,
    ) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                id,
                incarnation: 0,
                address: String::new(),
                fanout: 3,
                idle_fanout: None,
                tick_interval_ms,
                exchange_timeout_ms,
                max_message_bytes: 1 << 20,
                max_keys: None,
                max_data_bytes: None,
                pull_depth: MAX_PULL_DEPTH,
                optimisations: Optimisations::ALL,
                retention_ms: None,
                max_clock_offset_ms: DEFAULT_MAX_OFFSET_MS,
                suspect_after_failures: 2,
                down_after_failures: 4,
                probe_every_ticks: 10,
                gc_every_ticks: gc_every_ticks(tick_interval_ms, exchange_timeout_ms),
                join_before_writing: false,
                founder: false,
                seed: id.get(),
            },
        }
    }

    /// The member id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The incarnation: which life of this member the node is.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Peers contacted per tick.
    pub fn fanout(&self) -> usize {
        self.fanout
    }

    /// Peers contacted per tick after a round that found nothing new, if
    /// fewer than [`fanout`](Self::fanout).
    pub fn idle_fanout(&self) -> Option<usize> {
        self.idle_fanout
    }

    /// Milliseconds between ticks.
    pub fn tick_interval_ms(&self) -> u64 {
        self.tick_interval_ms
    }

    /// Milliseconds before an unanswered exchange counts as failed.
    pub fn exchange_timeout_ms(&self) -> u64 {
        self.exchange_timeout_ms
    }

    /// The most bytes one encoded message may take.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The most live keys this node holds before it refuses client writes
    /// of new keys; `None`: no limit.
    pub fn max_keys(&self) -> Option<u64> {
        self.max_keys
    }

    /// The most key and value bytes (tombstones' keys included) this node
    /// holds before it refuses client writes that would add more; `None`:
    /// no limit.
    pub fn max_data_bytes(&self) -> Option<u64> {
        self.max_data_bytes
    }

    /// Exchanges kept open with a peer whose last delta was cut to the
    /// message budget; 0 waits for the tick.
    pub fn pull_depth(&self) -> usize {
        self.pull_depth
    }

    /// How long a member may stay unheard from before tombstone collection
    /// goes on without it; `None`: it waits for every member forever.
    pub fn retention_ms(&self) -> Option<u64> {
        self.retention_ms
    }

    /// The optimisations of the exchange in force.
    pub fn optimisations(&self) -> Optimisations {
        self.optimisations
    }

    /// How far ahead of local time a remote timestamp may be.
    pub fn max_clock_offset_ms(&self) -> u64 {
        self.max_clock_offset_ms
    }

    /// Whether writes wait until a member has been heard from.
    pub fn join_before_writing(&self) -> bool {
        self.join_before_writing
    }

    /// Whether this node founds the cluster (see [`ConfigBuilder::founder`]).
    pub fn founder(&self) -> bool {
        self.founder
    }

    /// The address this node advertises to peers (opaque to the protocol).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The seed of the node's random choices: with it, a caller that drew
    /// it at random can rebuild, or compare, the same configuration.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Ticks between tombstone collections at `tick_interval_ms` a tick:
/// [`MIN_GC_EVERY_TICKS`], or enough that the collection period outlasts
/// `exchange_timeout_ms`.
fn gc_every_ticks(tick_interval_ms: u64, exchange_timeout_ms: u64) -> u32 {
    let ticks = (exchange_timeout_ms / tick_interval_ms.max(1)).saturating_add(1);
    u32::try_from(ticks.max(u64::from(MIN_GC_EVERY_TICKS))).unwrap_or(u32::MAX)
}

/// The optimisations of the exchange, each of which may be switched off
/// without making the protocol wrong: only slower or costlier. Pulling a cut
/// delta has its own setting, [`ConfigBuilder::pull_depth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Optimisations {
    /// A `Syn` carries only a hash of the vector when the peer last reported
    /// that hash, and a responder whose vector matches answers with its hash.
    pub hash_digest: bool,
    /// A responder that is behind lists only the origins where it is
    /// (`Behind`), not its whole vector.
    pub behind_digest: bool,
    /// Deltas sent to a peer are remembered until they land or cannot land,
    /// and the next delta for that peer starts past them.
    pub track_in_flight: bool,
    /// The part of a received delta that overtook the delta it follows is
    /// held until that one lands, rather than dropped and sent again.
    pub hold_early_parts: bool,
}

impl Optimisations {
    /// Every optimisation on: the default.
    pub const ALL: Self = Self {
        hash_digest: true,
        behind_digest: true,
        track_in_flight: true,
        hold_early_parts: true,
    };

    /// Every optimisation off.
    pub const NONE: Self = Self {
        hash_digest: false,
        behind_digest: false,
        track_in_flight: false,
        hold_early_parts: false,
    };
}

/// Builds a [`Config`]; [`build`](ConfigBuilder::build) checks it.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Which life of this member the node is. A member restarted without its
    /// state must take an incarnation it never used before, so that its new
    /// writes get an origin of their own (see [`crate::writer_origin`]).
    pub fn incarnation(mut self, incarnation: u32) -> Self {
        self.config.incarnation = incarnation;
        self
    }

    /// The address peers should reach this node at (opaque to the protocol).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.config.address = address.into();
        self
    }

    /// Peers contacted per tick (default 3).
    pub fn fanout(mut self, fanout: usize) -> Self {
        self.config.fanout = fanout;
        self
    }

    /// Peers contacted per tick after a round in which nothing new was
    /// written, received or learned (default `None`: always
    /// [`fanout`](Self::fanout)). In a quiet cluster every exchange ends
    /// with a matching hash, and its cost (a few packets each way) is the
    /// whole cost of a node; an idle fan-out of 1 cuts it to a third at the
    /// default fan-out. News spreads as fast as before: a node that writes,
    /// receives a delta or meets a vector or member list unlike its own
    /// goes back to the full fan-out for its next round. What slows is the
    /// pull of nodes that have heard nothing yet, at the tail of a
    /// dissemination, and the rate at which a node meets a peer that has
    /// gone down.
    pub fn idle_fanout(mut self, fanout: Option<usize>) -> Self {
        self.config.idle_fanout = fanout;
        self
    }

    /// Milliseconds between ticks (default 1,000). Unlike
    /// [`Config::for_interval`], derives no setting counted in ticks.
    pub fn tick_interval_ms(mut self, ms: u64) -> Self {
        self.config.tick_interval_ms = ms;
        self
    }

    /// Milliseconds before an unanswered exchange counts as failed (default
    /// 3,000). Unlike [`Config::for_interval`], derives no setting counted
    /// in ticks.
    pub fn exchange_timeout_ms(mut self, ms: u64) -> Self {
        self.config.exchange_timeout_ms = ms;
        self
    }

    /// The most bytes one encoded message may take (default 1 MiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.config.max_message_bytes = bytes;
        self
    }

    /// A quota on live keys (default none): past it, client writes of new
    /// keys are refused with [`WriteError::StoreFull`](crate::WriteError::StoreFull);
    /// overwrites and deletes still go through. Entries from peers are
    /// taken whatever the quota: they were accepted elsewhere, and
    /// refusing them would split the cluster.
    pub fn max_keys(mut self, keys: Option<u64>) -> Self {
        self.config.max_keys = keys;
        self
    }

    /// A quota on the bytes of keys and values held (default none): past
    /// it, client writes that would add bytes are refused with
    /// [`WriteError::StoreFull`](crate::WriteError::StoreFull); writes that
    /// shrink the data and deletes still go through. Entries from peers are
    /// taken whatever the quota, as with [`max_keys`](Self::max_keys).
    pub fn max_data_bytes(mut self, bytes: Option<u64>) -> Self {
        self.config.max_data_bytes = bytes;
        self
    }

    /// How many exchanges a node keeps open, without waiting for the tick,
    /// with a peer whose last delta was cut to the message budget (default
    /// and at most [`MAX_PULL_DEPTH`]; fewer on a slow link, where answers
    /// sharing it would miss their deadline). A node far behind then pulls
    /// the rest at the pace it can apply it, with the peer preparing the
    /// next parts while it applies the last, instead of one message per
    /// tick; from one peer at a time, since every peer would send the same
    /// parts. 0 keeps catch-up traffic at the tick's pace: one exchange per
    /// tick and peer.
    pub fn pull_depth(mut self, depth: usize) -> Self {
        self.config.pull_depth = depth;
        self
    }

    /// Which optimisations of the exchange to use (default
    /// [`Optimisations::ALL`]).
    pub fn optimisations(mut self, optimisations: Optimisations) -> Self {
        self.config.optimisations = optimisations;
        self
    }

    /// The base protocol: every optimisation of the exchange off
    /// ([`Optimisations::NONE`]) and no pulling
    /// ([`pull_depth`](Self::pull_depth) 0). Each exchange sends a whole
    /// vector and is answered with the entries past it and a whole vector.
    /// Slower and costlier; the optimised protocol must reach the same
    /// states, which tests check by running both.
    pub fn unoptimised(self) -> Self {
        self.optimisations(Optimisations::NONE).pull_depth(0)
    }

    /// How far ahead of local time a remote timestamp may be (default 500 ms).
    pub fn max_clock_offset_ms(mut self, ms: u64) -> Self {
        self.config.max_clock_offset_ms = ms;
        self
    }

    /// Failed exchanges in a row before a peer is suspect (default 2) and
    /// before it is down (default 4).
    pub fn liveness_thresholds(mut self, suspect_after: u32, down_after: u32) -> Self {
        self.config.suspect_after_failures = suspect_after;
        self.config.down_after_failures = down_after;
        self
    }

    /// Every this many ticks, one suspect or down peer is probed (default 10).
    pub fn probe_every_ticks(mut self, ticks: u32) -> Self {
        self.config.probe_every_ticks = ticks;
        self
    }

    /// Every this many ticks, stable tombstones are purged (default 10, or
    /// as [`Config::for_interval`] derives it). The period must outlast the
    /// exchange timeout.
    pub fn gc_every_ticks(mut self, ticks: u32) -> Self {
        self.config.gc_every_ticks = ticks;
        self
    }

    /// How long a member may stay unheard from before tombstone collection
    /// goes on without it (default `None`: never).
    ///
    /// A member that is away holds collection back on every node, so that
    /// it finds every delete it missed when it returns: a partition or an
    /// outage of any length heals with nothing lost. The price is that
    /// tombstones written meanwhile stay, and a member that never returns
    /// (a host gone without leaving) holds them forever. Past this window,
    /// a node marks the silent member [`Expired`](crate::Liveness::Expired)
    /// in the incarnation it last heard, tells the others through its
    /// member list, and collects without it. Its messages in that
    /// incarnation are refused from then on: it may still hold values whose
    /// deletes are gone everywhere else. It learns so from the refusal
    /// ([`Event::SelfExpired`](crate::Event::SelfExpired)), refuses writes,
    /// and must be started empty, in a new incarnation, to rejoin. This is
    /// Cassandra's `gc_grace_seconds`: choose a window longer than any
    /// outage that should heal by itself (days).
    pub fn retention_ms(mut self, ms: Option<u64>) -> Self {
        self.config.retention_ms = ms;
        self
    }

    /// Refuse writes until some member has been heard from (default off).
    ///
    /// Turn it on when members learn of each other through seeds rather than
    /// from one list they all share. A node that writes before anyone knows
    /// it exists is a cluster of its own: the members that never heard of it
    /// collect deletes without waiting for it, and when it is found, a write
    /// it made before such a delete would come back, since the tombstone that
    /// should beat it is gone. Once a member has heard from this node (it
    /// answered, or this node answered it), the member waits for it, and
    /// tells the others. With one member list given to every node, each
    /// knows all the others from the start, and there is nothing to wait for.
    /// The first node, which has nobody to join, is the
    /// [`founder`](Self::founder).
    pub fn join_before_writing(mut self, on: bool) -> Self {
        self.config.join_before_writing = on;
        self
    }

    /// This node founds the cluster: with
    /// [`join_before_writing`](Self::join_before_writing), it takes writes
    /// at once, since there is nobody to join (default off). Give it to the
    /// first node only, the one started with no seed; the others join
    /// through it.
    pub fn founder(mut self, on: bool) -> Self {
        self.config.founder = on;
        self
    }

    /// Seeds the node's random choices (default: the node id).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = &self.config;
        if c.id.get() > u64::from(u32::MAX) {
            return Err(ConfigError::IdTooLarge(c.id));
        }
        if c.fanout == 0 || c.idle_fanout == Some(0) {
            return Err(ConfigError::ZeroFanout);
        }
        if c.tick_interval_ms == 0 {
            return Err(ConfigError::ZeroTickInterval);
        }
        if c.exchange_timeout_ms == 0 {
            return Err(ConfigError::ZeroExchangeTimeout);
        }
        if !(MIN_MAX_MESSAGE_BYTES..=HARD_MAX_MESSAGE_BYTES).contains(&c.max_message_bytes) {
            return Err(ConfigError::MaxMessageBytes(c.max_message_bytes));
        }
        if c.pull_depth > MAX_PULL_DEPTH {
            return Err(ConfigError::PullDepth(c.pull_depth));
        }
        if c.suspect_after_failures == 0 || c.down_after_failures < c.suspect_after_failures {
            return Err(ConfigError::LivenessThresholds {
                suspect_after: c.suspect_after_failures,
                down_after: c.down_after_failures,
            });
        }
        if c.probe_every_ticks == 0 || c.gc_every_ticks == 0 {
            return Err(ConfigError::ZeroPeriod);
        }
        let gc_period_ms = u64::from(c.gc_every_ticks).saturating_mul(c.tick_interval_ms);
        if gc_period_ms <= c.exchange_timeout_ms {
            return Err(ConfigError::GcPeriod {
                gc_period_ms,
                exchange_timeout_ms: c.exchange_timeout_ms,
            });
        }
        if let Some(retention_ms) = c.retention_ms
            && retention_ms <= gc_period_ms
        {
            return Err(ConfigError::Retention {
                retention_ms,
                gc_period_ms,
            });
        }
        Ok(self.config)
    }
}

/// A configuration setting out of range. Nothing is built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Member ids must fit in 32 bits: the origin of a write packs the member
    /// id with the incarnation.
    #[error("node id {0} does not fit in 32 bits")]
    IdTooLarge(NodeId),
    /// A node must contact at least one peer per tick, idle or not.
    #[error("fan-out and idle fan-out must be at least 1")]
    ZeroFanout,
    /// Ticks must be apart in time.
    #[error("tick interval must be at least 1 ms")]
    ZeroTickInterval,
    /// Exchanges need time to complete.
    #[error("exchange timeout must be at least 1 ms")]
    ZeroExchangeTimeout,
    /// The message size must leave room for a digest and an entry, and stay
    /// under the decoder's hard limit.
    #[error("max message bytes {0} is outside {MIN_MAX_MESSAGE_BYTES}..={HARD_MAX_MESSAGE_BYTES}")]
    MaxMessageBytes(usize),
    /// More pulled exchanges than a peer keeps deltas in flight would only
    /// bring back empty answers.
    #[error("pull depth {0} is above {MAX_PULL_DEPTH}")]
    PullDepth(usize),
    /// Suspicion must come after at least one failure, and down no sooner.
    #[error(
        "liveness thresholds suspect after {suspect_after}, down after {down_after} are inconsistent"
    )]
    LivenessThresholds {
        /// Failures before suspect.
        suspect_after: u32,
        /// Failures before down.
        down_after: u32,
    },
    /// Probe and GC periods must be at least one tick.
    #[error("probe and GC periods must be at least one tick")]
    ZeroPeriod,
    /// Tombstone collection must wait out every exchange that could still
    /// carry an older write.
    #[error(
        "the GC period ({gc_period_ms} ms) must exceed the exchange timeout ({exchange_timeout_ms} ms)"
    )]
    GcPeriod {
        /// GC ticks times the tick interval.
        gc_period_ms: u64,
        /// The exchange timeout.
        exchange_timeout_ms: u64,
    },
    /// A member must be given at least a GC period before collection goes
    /// on without it: a shorter window would expire members that merely
    /// missed a few exchanges.
    #[error(
        "the retention window ({retention_ms} ms) must exceed the GC period ({gc_period_ms} ms)"
    )]
    Retention {
        /// The retention window.
        retention_ms: u64,
        /// GC ticks times the tick interval.
        gc_period_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_outlast_the_exchange_timeout() {
        assert_eq!(gc_every_ticks(100, 1_000), 11);
        assert_eq!(gc_every_ticks(1_000, 1_000), 10);
        assert_eq!(gc_every_ticks(1_000, 3_000), MIN_GC_EVERY_TICKS);
        assert_eq!(gc_every_ticks(1, 10_000), 10_001);
        assert_eq!(gc_every_ticks(0, 1_000), 1_001);
        assert_eq!(gc_every_ticks(1, u64::MAX), u32::MAX);
    }

    #[test]
    fn the_builder_is_the_preset_at_the_default_interval() {
        let id = NodeId::new(9);
        let config = Config::builder(id).config;
        assert_eq!(config, Config::for_interval(id, 1_000, 3_000).config);
        assert_eq!(config.gc_every_ticks, 10);
        assert_eq!(config.probe_every_ticks, 10);
        assert_eq!(
            (config.suspect_after_failures, config.down_after_failures),
            (2, 4)
        );
    }
}
