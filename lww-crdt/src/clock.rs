//! Hybrid logical clocks: timestamps that follow physical time but never go
//! backwards, and never fall behind a timestamp the node has seen.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Bits of an [`Hlc`] that hold the logical counter.
const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A hybrid-logical-clock timestamp: physical milliseconds in the high 48 bits,
/// a logical counter in the low 16.
///
/// Packing both into one `u64` keeps stamps small on the wire and makes their
/// order the plain integer order. 48 bits of milliseconds last until the year
/// 10889.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Hlc(u64);

impl Hlc {
    /// The smallest timestamp; a version vector maps unseen origins to it.
    pub const ZERO: Hlc = Hlc(0);
    /// The largest timestamp.
    pub const MAX: Hlc = Hlc(u64::MAX);
    /// The largest physical time an `Hlc` can hold, in milliseconds.
    pub const MAX_PHYSICAL_MS: u64 = u64::MAX >> LOGICAL_BITS;

    /// Builds a timestamp from its parts; physical time saturates at
    /// [`Hlc::MAX_PHYSICAL_MS`].
    pub const fn new(physical_ms: u64, logical: u16) -> Self {
        let physical = if physical_ms > Self::MAX_PHYSICAL_MS {
            Self::MAX_PHYSICAL_MS
        } else {
            physical_ms
        };
        Self((physical << LOGICAL_BITS) | logical as u64)
    }

    /// Reinterprets a packed value (as produced by [`Hlc::as_u64`]).
    pub const fn from_u64(packed: u64) -> Self {
        Self(packed)
    }

    /// The packed value; its integer order is the timestamp order.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Physical milliseconds since the Unix epoch (or since the start of a
    /// simulation, for virtual clocks).
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter that orders events within one millisecond.
    pub const fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The next timestamp in order, or `None` at [`Hlc::MAX`].
    pub const fn successor(self) -> Option<Hlc> {
        match self.0.checked_add(1) {
            Some(next) => Some(Hlc(next)),
            None => None,
        }
    }

    /// The previous timestamp in order, or `None` at [`Hlc::ZERO`].
    pub const fn predecessor(self) -> Option<Hlc> {
        match self.0.checked_sub(1) {
            Some(prev) => Some(Hlc(prev)),
            None => None,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A source of physical time in milliseconds.
///
/// Injected so that a simulation can run on virtual time and a test can make
/// time stand still or jump backwards.
pub trait PhysicalClock {
    /// Milliseconds since an epoch shared by the cluster.
    fn now_ms(&self) -> u64;
}

impl<F: Fn() -> u64> PhysicalClock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// The operating system's wall clock, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as the epoch; the hybrid clock still
        // moves forward on its logical counter.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }
}

/// A physical clock that shows whatever it was last set to; clones share it.
///
/// For simulations (virtual time) and tests (time that stands still or jumps
/// backwards).
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    /// Moves the time forward by `ms`, stopping at `u64::MAX` rather than
    /// wrapping round to the past.
    pub fn advance(&self, ms: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                Some(now.saturating_add(ms))
            });
    }

    /// The time it shows.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl PhysicalClock for ManualClock {
    fn now_ms(&self) -> u64 {
        ManualClock::now_ms(self)
    }
}

/// Why a hybrid clock refused a remote timestamp, or a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The clock has reached [`Hlc::MAX`] and cannot issue a greater
    /// timestamp: a write would reuse one and could silently lose. Only a
    /// state holding a stamp near the end of time (restored unchecked with
    /// [`HybridClock::advance_to`]) gets a clock there.
    #[error("the clock has reached the largest timestamp ({last}) and cannot issue a greater one")]
    Exhausted {
        /// The clock's last timestamp.
        last: Hlc,
    },
    /// The remote timestamp is further ahead of local physical time than the
    /// configured maximum offset. The clock is unchanged.
    #[error(
        "timestamp {remote} is {ahead_ms} ms ahead of local time {local_ms} ms, \
         more than the {max_offset_ms} ms allowed"
    )]
    TooFarAhead {
        /// The refused timestamp.
        remote: Hlc,
        /// Local physical time when it was refused.
        local_ms: u64,
        /// How far ahead of local physical time it was.
        ahead_ms: u64,
        /// The configured maximum offset.
        max_offset_ms: u64,
    },
}

/// The default bound on how far a remote timestamp may run ahead of local
/// physical time.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;

/// A hybrid logical clock over an injectable physical time source.
///
/// [`now`](HybridClock::now) is strictly increasing, even while physical time
/// stands still or goes backwards; [`observe`](HybridClock::observe) moves the
/// clock past a remote timestamp so that causally later writes get greater
/// stamps, unless that timestamp is implausibly far in the future.
#[derive(Clone, Debug)]
pub struct HybridClock<C = SystemClock> {
    physical: C,
    last: Hlc,
    max_offset_ms: u64,
}

impl<C: PhysicalClock> HybridClock<C> {
    /// A clock over `physical` with the default maximum offset of 500 ms.
    pub fn new(physical: C) -> Self {
        Self::with_max_offset(physical, DEFAULT_MAX_OFFSET_MS)
    }

    /// A clock over `physical` that refuses remote timestamps more than
    /// `max_offset_ms` ahead of local physical time.
    pub fn with_max_offset(physical: C, max_offset_ms: u64) -> Self {
        Self {
            physical,
            last: Hlc::ZERO,
            max_offset_ms,
        }
    }

    /// The configured maximum offset in milliseconds.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The physical time source.
    pub fn physical(&self) -> &C {
        &self.physical
    }

    /// The greatest timestamp issued or observed so far.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A new timestamp, strictly greater than every one issued or observed
    /// before.
    ///
    /// Follows physical time when it is ahead; otherwise counts on the logical
    /// part, carrying into the next millisecond when the counter is full.
    ///
    /// # Errors
    /// [`ClockError::Exhausted`] once the clock holds [`Hlc::MAX`]: no
    /// greater timestamp exists, and reusing one would let a write lose to
    /// an earlier one. The clock is unchanged.
    pub fn now(&mut self) -> Result<Hlc, ClockError> {
        let wall = Hlc::new(self.physical.now_ms(), 0);
        self.last = if wall > self.last {
            wall
        } else {
            self.last
                .successor()
                .ok_or(ClockError::Exhausted { last: self.last })?
        };
        Ok(self.last)
    }

    /// Checks that `remote` is at most the maximum offset ahead of local
    /// physical time, without changing the clock.
    pub fn check(&self, remote: Hlc) -> Result<(), ClockError> {
        let local_ms = self.physical.now_ms();
        let ahead_ms = remote.physical_ms().saturating_sub(local_ms);
        if ahead_ms > self.max_offset_ms {
            return Err(ClockError::TooFarAhead {
                remote,
                local_ms,
                ahead_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        Ok(())
    }

    /// Moves the clock past `remote`, so that every later [`now`](Self::now)
    /// is greater than it.
    ///
    /// # Errors
    /// [`ClockError::TooFarAhead`] if `remote` is more than the maximum offset
    /// ahead of local physical time; the clock is then unchanged.
    pub fn observe(&mut self, remote: Hlc) -> Result<(), ClockError> {
        self.check(remote)?;
        self.last = self.last.max(remote);
        Ok(())
    }

    /// Moves the clock to at least `floor` without the offset check.
    ///
    /// For restoring a clock from durable state, where the floor is known to
    /// have been issued or checked by this node. A floor at [`Hlc::MAX`]
    /// leaves a clock that refuses every [`now`](Self::now).
    pub fn advance_to(&mut self, floor: Hlc) {
        self.last = self.last.max(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_physical_and_logical() {
        let hlc = Hlc::new(1_700_000_000_000, 7);
        assert_eq!(hlc.physical_ms(), 1_700_000_000_000);
        assert_eq!(hlc.logical(), 7);
        assert!(Hlc::new(5, u16::MAX) < Hlc::new(6, 0));
        assert_eq!(hlc.to_string(), "1700000000000.7");
    }

    #[test]
    fn now_counts_logically_while_time_stands_still() {
        let physical = ManualClock::new(100);
        let mut clock = HybridClock::new(physical.clone());
        let a = clock.now().unwrap();
        let b = clock.now().unwrap();
        assert_eq!(a, Hlc::new(100, 0));
        assert_eq!(b, Hlc::new(100, 1));
        physical.set(50);
        let c = clock.now().unwrap();
        assert_eq!(c, Hlc::new(100, 2));
        physical.set(200);
        assert_eq!(clock.now(), Ok(Hlc::new(200, 0)));
    }

    #[test]
    fn logical_overflow_carries_into_the_next_millisecond() {
        let mut clock = HybridClock::new(ManualClock::new(10));
        clock.advance_to(Hlc::new(10, u16::MAX));
        assert_eq!(clock.now(), Ok(Hlc::new(11, 0)));
    }

    #[test]
    fn observe_refuses_far_future_and_changes_nothing() {
        let mut clock = HybridClock::with_max_offset(ManualClock::new(1_000), 500);
        let before = clock.now().unwrap();
        let err = clock.observe(Hlc::new(1_501, 0)).unwrap_err();
        assert!(matches!(err, ClockError::TooFarAhead { ahead_ms: 501, .. }));
        assert_eq!(clock.last(), before);
        clock.observe(Hlc::new(1_500, 3)).unwrap();
        assert_eq!(clock.now(), Ok(Hlc::new(1_500, 4)));
    }

    #[test]
    fn an_exhausted_clock_refuses_rather_than_reusing_a_stamp() {
        let mut clock = HybridClock::new(ManualClock::new(u64::MAX));
        assert_eq!(clock.now(), Ok(Hlc::new(Hlc::MAX_PHYSICAL_MS, 0)));
        clock.advance_to(Hlc::MAX.predecessor().unwrap());
        assert_eq!(clock.now(), Ok(Hlc::MAX));
        assert_eq!(clock.now(), Err(ClockError::Exhausted { last: Hlc::MAX }));
        assert_eq!(clock.last(), Hlc::MAX);
        assert_eq!(Hlc::new(u64::MAX, 0).physical_ms(), Hlc::MAX_PHYSICAL_MS);
    }

    #[test]
    fn a_manual_clock_advances_without_wrapping() {
        let time = ManualClock::new(10);
        time.advance(5);
        assert_eq!(time.now_ms(), 15);
        time.advance(u64::MAX);
        assert_eq!(time.now_ms(), u64::MAX);
    }
}
