//! The optimisations of the exchange change its cost, never its outcome:
//! with each switched off, and with all of them off, nodes that write,
//! catch up through messages cut to a small budget and receive frames out
//! of order end with the same map as with all of them on. Each switch also
//! shows in what the exchange costs, so none is silently ignored.

mod common;

use common::Net;
use gossip::{ConfigBuilder, Metrics, Optimisations, StoreMap};

const NODES: u64 = 5;
const TICK_MS: u64 = 1_000;

/// A change to the default configuration.
type Configure = fn(ConfigBuilder) -> ConfigBuilder;

/// Every optimisation on but one.
fn all_but(off: fn(&mut Optimisations)) -> Optimisations {
    let mut optimisations = Optimisations::ALL;
    off(&mut optimisations);
    optimisations
}

/// A run: writes on every node, one node far behind catching up through
/// small messages, frames shuffled every round. Returns each node's map and
/// the summed metrics.
fn run(configure: impl Fn(ConfigBuilder) -> ConfigBuilder) -> (Vec<StoreMap>, Metrics) {
    let mut net = Net::full(NODES, |b| {
        configure(b.tick_interval_ms(TICK_MS).max_message_bytes(1_024))
    });
    // Node 4 is away while the others write: it comes back far behind.
    net.down[4] = true;
    for i in 0..300u64 {
        let node = (i % 4) as usize;
        net.nodes[node]
            .put(format!("key-{}", i % 120), format!("value-{i}"), 1_000 + i)
            .expect("write taken");
        if i % 7 == 0 {
            net.nodes[node]
                .delete(format!("key-{}", (i + 3) % 120), 1_000 + i)
                .expect("delete taken");
        }
    }
    net.down[4] = false;
    for round in 1..=60u64 {
        let now = 2_000 + round * TICK_MS;
        if round == 3 {
            net.nodes[4]
                .put("late".into(), "from the node that was away".into(), now)
                .expect("write taken");
        }
        net.tick_all(now);
        // Frames reach their receivers in any order: deltas overtake the
        // ones they follow.
        let mut shuffles = round << 32;
        loop {
            shuffles += 1;
            net.shuffle(shuffles);
            if net.step(now).is_none() {
                break;
            }
        }
    }
    let maps = net.nodes.iter().map(|node| node.map().clone()).collect();
    let mut total = Metrics::default();
    for node in &net.nodes {
        let m = node.metrics();
        total.sent.bytes[0] += m.sent.bytes.iter().sum::<u64>();
        total.entries_sent += m.entries_sent;
        total.entries_redundant += m.entries_redundant;
        total.exchanges_pulled += m.exchanges_pulled;
    }
    (maps, total)
}

#[test]
fn every_optimisation_off_reaches_the_same_maps() {
    let (reference, optimised) = run(|b| b);
    assert!(
        reference.iter().all(|map| *map == reference[0]),
        "the optimised run did not converge"
    );
    assert!(reference[0].get("late").is_some());
    let variants: [(&str, Configure); 6] = [
        ("no hash digests", |b| {
            b.optimisations(all_but(|o| o.hash_digest = false))
        }),
        ("no Behind digests", |b| {
            b.optimisations(all_but(|o| o.behind_digest = false))
        }),
        ("no tracking in flight", |b| {
            b.optimisations(all_but(|o| o.track_in_flight = false))
        }),
        ("no held parts", |b| {
            b.optimisations(all_but(|o| o.hold_early_parts = false))
        }),
        ("no pulling", |b| b.pull_depth(0)),
        ("unoptimised", ConfigBuilder::unoptimised),
    ];
    for (name, configure) in variants {
        let (maps, metrics) = run(configure);
        for (i, map) in maps.iter().enumerate() {
            assert_eq!(*map, reference[0], "{name}: node {i} differs");
        }
        // The switch took effect: the run cost something else.
        assert_ne!(
            (
                metrics.sent.bytes[0],
                metrics.entries_sent,
                metrics.entries_redundant
            ),
            (
                optimised.sent.bytes[0],
                optimised.entries_sent,
                optimised.entries_redundant
            ),
            "{name}: the same cost as with every optimisation on"
        );
    }
}

#[test]
fn without_hash_digests_an_idle_exchange_carries_whole_vectors() {
    let idle_bytes = |configure: Configure| {
        let mut net = Net::full(2, configure);
        for writer in 0..2 {
            net.nodes[writer]
                .put(format!("k{writer}"), "v".into(), 1_000)
                .expect("write taken");
        }
        for round in 1..=5 {
            net.round(round * TICK_MS);
        }
        assert_eq!(net.nodes[0].map(), net.nodes[1].map());
        let before: usize = net.log.iter().map(|s| s.bytes).sum();
        net.round(6 * TICK_MS);
        net.log.iter().map(|s| s.bytes).sum::<usize>() - before
    };
    let hashed = idle_bytes(|b| b);
    let whole = idle_bytes(|b| {
        b.optimisations(Optimisations {
            hash_digest: false,
            ..Optimisations::ALL
        })
    });
    assert!(
        whole > hashed,
        "an idle round took {whole} bytes with whole vectors, {hashed} with hashes"
    );
}

#[test]
fn unoptimised_nodes_never_pull() {
    let (_, unoptimised) = run(ConfigBuilder::unoptimised);
    assert_eq!(unoptimised.exchanges_pulled, 0);
    let (_, optimised) = run(|b| b);
    assert!(optimised.exchanges_pulled > 0, "the catch-up never pulled");
}
