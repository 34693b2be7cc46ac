//! Configuration validation: every setting out of range gives its own
//! `ConfigError` and builds nothing; the defaults and the edges of every
//! range build.

use gossip::{Config, ConfigBuilder, ConfigError, HARD_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES};
use lww_crdt::NodeId;

fn builder() -> ConfigBuilder {
    Config::builder(NodeId::new(1))
}

#[test]
fn the_defaults_build() {
    let config = builder().build().unwrap();
    assert_eq!(config.id(), NodeId::new(1));
    assert_eq!(config.incarnation(), 0);
    assert_eq!(config.fanout(), 3);
    assert_eq!(config.tick_interval_ms(), 1_000);
    assert_eq!(config.exchange_timeout_ms(), 3_000);
    assert_eq!(config.max_message_bytes(), 1 << 20);
    assert_eq!(config.max_clock_offset_ms(), 500);
    assert_eq!(config.address(), "");
}

#[test]
fn an_id_beyond_32_bits_is_refused() {
    let too_large = NodeId::new(u64::from(u32::MAX) + 1);
    assert_eq!(
        Config::builder(too_large).build(),
        Err(ConfigError::IdTooLarge(too_large))
    );
    assert!(
        Config::builder(NodeId::new(u64::from(u32::MAX)))
            .build()
            .is_ok()
    );
}

#[test]
fn a_zero_fanout_is_refused() {
    assert_eq!(builder().fanout(0).build(), Err(ConfigError::ZeroFanout));
    assert!(builder().fanout(1).build().is_ok());
}

#[test]
fn a_zero_tick_interval_is_refused() {
    assert_eq!(
        builder().tick_interval_ms(0).build(),
        Err(ConfigError::ZeroTickInterval)
    );
}

#[test]
fn a_zero_exchange_timeout_is_refused() {
    assert_eq!(
        builder().exchange_timeout_ms(0).build(),
        Err(ConfigError::ZeroExchangeTimeout)
    );
}

#[test]
fn a_message_size_outside_its_range_is_refused() {
    for bytes in [
        0,
        MIN_MAX_MESSAGE_BYTES - 1,
        HARD_MAX_MESSAGE_BYTES + 1,
        usize::MAX,
    ] {
        assert_eq!(
            builder().max_message_bytes(bytes).build(),
            Err(ConfigError::MaxMessageBytes(bytes))
        );
    }
    for bytes in [MIN_MAX_MESSAGE_BYTES, HARD_MAX_MESSAGE_BYTES] {
        assert!(builder().max_message_bytes(bytes).build().is_ok());
    }
}

#[test]
fn inconsistent_liveness_thresholds_are_refused() {
    for (suspect_after, down_after) in [(0, 0), (0, 4), (3, 2)] {
        assert_eq!(
            builder()
                .liveness_thresholds(suspect_after, down_after)
                .build(),
            Err(ConfigError::LivenessThresholds {
                suspect_after,
                down_after
            })
        );
    }
    assert!(builder().liveness_thresholds(1, 1).build().is_ok());
}

#[test]
fn zero_probe_or_gc_periods_are_refused() {
    assert_eq!(
        builder().probe_every_ticks(0).build(),
        Err(ConfigError::ZeroPeriod)
    );
    assert_eq!(
        builder().gc_every_ticks(0).build(),
        Err(ConfigError::ZeroPeriod)
    );
}

#[test]
fn a_gc_period_not_longer_than_the_exchange_timeout_is_refused() {
    // 3 ticks of 1,000 ms against the 3,000 ms default timeout.
    assert_eq!(
        builder().gc_every_ticks(3).build(),
        Err(ConfigError::GcPeriod {
            gc_period_ms: 3_000,
            exchange_timeout_ms: 3_000
        })
    );
    assert_eq!(
        builder()
            .tick_interval_ms(10)
            .exchange_timeout_ms(100)
            .build(),
        Err(ConfigError::GcPeriod {
            gc_period_ms: 100,
            exchange_timeout_ms: 100
        })
    );
    assert!(builder().gc_every_ticks(4).build().is_ok());
}

#[test]
fn an_overflowing_gc_period_saturates_instead_of_wrapping() {
    // gc ticks times the interval overflows u64: it saturates, and so still
    // exceeds the exchange timeout.
    assert!(
        builder()
            .tick_interval_ms(u64::MAX)
            .gc_every_ticks(2)
            .build()
            .is_ok()
    );
}

#[test]
fn a_preset_derives_its_gc_period_from_the_interval_and_the_timeout() {
    let id = NodeId::new(1);
    assert_eq!(
        Config::for_interval(id, 1_000, 3_000).build(),
        builder().build()
    );
    // Ten ticks of 100 ms would not outlast a 1 s timeout; eleven do.
    assert_eq!(
        Config::for_interval(id, 100, 1_000).build(),
        builder()
            .tick_interval_ms(100)
            .exchange_timeout_ms(1_000)
            .gc_every_ticks(11)
            .build()
    );
    // What the preset derives, the builder may still change.
    assert_eq!(
        Config::for_interval(id, 100, 1_000)
            .gc_every_ticks(10)
            .build(),
        Err(ConfigError::GcPeriod {
            gc_period_ms: 1_000,
            exchange_timeout_ms: 1_000
        })
    );
    for (interval, timeout) in [
        (1, 1),
        (1, u64::from(u32::MAX) - 2),
        (u64::MAX, u64::MAX - 1),
    ] {
        assert!(
            Config::for_interval(id, interval, timeout).build().is_ok(),
            "{interval} ms, {timeout} ms"
        );
    }
}

proptest::proptest! {
    /// Any interval, and any timeout shorter than `u32::MAX` ticks of it,
    /// builds. Both are drawn over every magnitude.
    #[test]
    fn every_preset_in_range_builds(
        interval in (0u32..64, proptest::num::u64::ANY),
        timeout in (0u32..64, proptest::num::u64::ANY),
    ) {
        let interval = (interval.1 >> interval.0).max(1);
        let timeout = (timeout.1 >> timeout.0).clamp(1, u64::MAX - 1);
        proptest::prop_assume!(timeout / interval < u64::from(u32::MAX));
        let id = NodeId::new(u64::from(u32::MAX));
        let built = Config::for_interval(id, interval, timeout).build();
        proptest::prop_assert!(built.is_ok(), "{:?}", built);
    }
}
