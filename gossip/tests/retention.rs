//! The retention window: a member silent for longer than it expires, the
//! others collect tombstones without it, and it is refused in that life,
//! by every member, including those that join after, so that the values it
//! holds whose deletes were collected never come back. Started empty in a
//! new incarnation, it is welcome. Without a window, the same outage heals
//! with the delete reaching it.

mod common;

use common::{Net, builder, member};
use gossip::{Event, Liveness, MessageError, Node, WriteError};
use lww_crdt::NodeId;

const TICK_MS: u64 = 1_000;
/// Three GC periods of ten ticks.
const RETENTION_MS: u64 = 30_000;

fn net(retention_ms: Option<u64>) -> Net {
    Net::full(3, |b| {
        b.tick_interval_ms(TICK_MS).retention_ms(retention_ms)
    })
}

/// Rounds `from..to`, one a second.
fn rounds(net: &mut Net, from: u64, to: u64) {
    for round in from..to {
        net.round(round * TICK_MS);
    }
}

/// Node 2 holds `k = v`; it goes away; node 0 deletes `k`; 80 s pass.
fn outage(net: &mut Net) {
    net.nodes[0]
        .put("k".into(), "v".into(), TICK_MS)
        .expect("write taken");
    // Long enough for every node to have heard from a majority for a
    // whole window: node 2 could expire its peers on its return if it
    // judged by that alone.
    rounds(net, 1, 45);
    assert_eq!(net.nodes[2].get("k"), Some("v"));
    net.down[2] = true;
    net.nodes[0]
        .delete("k".into(), 45 * TICK_MS)
        .expect("delete taken");
    rounds(net, 45, 125);
}

#[test]
fn a_member_silent_past_the_window_expires_and_is_refused_until_it_starts_empty() {
    let mut net = net(Some(RETENTION_MS));
    outage(&mut net);
    for node in 0..2 {
        assert!(
            net.events.iter().any(|(at, e)| *at == node
                && matches!(e, Event::PeerExpired { peer, silent_ms: Some(silent), .. }
                    if *peer == NodeId::new(2) && *silent > RETENTION_MS)),
            "node {node} did not expire node 2"
        );
        assert_eq!(
            net.nodes[node].liveness(NodeId::new(2)),
            Some(Liveness::Expired)
        );
        // Collection went on without it: the tombstone is gone.
        assert_eq!(net.nodes[node].map().tombstone_count(), 0, "node {node}");
        assert_eq!(net.nodes[node].get("k"), None);
    }

    // It comes back as it was, a paused process resuming: it ticks for a
    // GC period before anything it sends is answered. Having heard from
    // nobody for as long, it expires nobody: it is the one that was away.
    for tick in 125..136 {
        net.nodes[2].handle_tick(tick * TICK_MS);
        while net.nodes[2].poll_transmit().is_some() {}
    }
    for peer in 0..2 {
        assert_ne!(
            net.nodes[2].liveness(NodeId::new(peer)),
            Some(Liveness::Expired)
        );
    }
    // Then it is refused, and told so.
    net.down[2] = false;
    rounds(&mut net, 136, 150);
    assert!(
        net.refused.iter().any(
            |(_, e)| matches!(e, MessageError::Expired { from, .. } if *from == NodeId::new(2))
        )
    );
    assert!(
        net.events
            .iter()
            .any(|(at, e)| *at == 2 && matches!(e, Event::SelfExpired { .. }))
    );
    assert!(matches!(
        net.nodes[2].put("x".into(), "y".into(), 150 * TICK_MS),
        Err(WriteError::Expired { .. })
    ));
    // The value whose delete was collected did not come back.
    for node in 0..2 {
        assert_eq!(net.nodes[node].get("k"), None, "node {node}");
    }

    // A member that joins now learns of the expiry from the member list,
    // and refuses node 2 as well.
    let newcomer = Node::new(
        builder(3)
            .tick_interval_ms(TICK_MS)
            .retention_ms(Some(RETENTION_MS))
            .build()
            .expect("valid config"),
        [member(0)],
    );
    net.nodes.push(newcomer);
    net.down.push(false);
    net.skew.push(0);
    rounds(&mut net, 150, 155);
    assert_eq!(
        net.nodes[3].liveness(NodeId::new(2)),
        Some(Liveness::Expired)
    );
    net.nodes[2].add_member(member(3));
    let refused_before = net.refused.len();
    rounds(&mut net, 155, 165);
    assert!(
        net.refused[refused_before..]
            .iter()
            .any(|(at, e)| *at == 3 && matches!(e, MessageError::Expired { .. })),
        "the newcomer took node 2's gossip"
    );
    assert_eq!(net.nodes[3].get("k"), None);

    // Started empty in a new incarnation, it is welcome back.
    net.nodes[2] = Node::new(
        builder(2)
            .tick_interval_ms(TICK_MS)
            .retention_ms(Some(RETENTION_MS))
            .incarnation(1)
            .build()
            .expect("valid config"),
        [member(0)],
    );
    rounds(&mut net, 165, 175);
    net.nodes[2]
        .put("back".into(), "again".into(), 175 * TICK_MS)
        .expect("the new life takes writes");
    rounds(&mut net, 175, 185);
    for node in 0..4 {
        assert_eq!(net.nodes[node].get("back"), Some("again"), "node {node}");
        assert_eq!(net.nodes[node].get("k"), None, "node {node}");
        assert_eq!(net.nodes[node].map(), net.nodes[0].map(), "node {node}");
    }
}

#[test]
fn without_a_window_the_same_outage_heals_and_the_delete_reaches_the_member() {
    let mut net = net(None);
    outage(&mut net);
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::PeerExpired { .. }))
    );
    // Collection waited for node 2: the tombstone is still there.
    assert_eq!(net.nodes[0].map().tombstone_count(), 1);
    net.down[2] = false;
    rounds(&mut net, 125, 140);
    assert!(net.refused.is_empty());
    for node in 0..3 {
        assert_eq!(net.nodes[node].get("k"), None, "node {node}");
        assert_eq!(net.nodes[node].map(), net.nodes[0].map());
    }
}

#[test]
fn a_window_no_longer_than_the_gc_period_is_refused() {
    let config = builder(1)
        .tick_interval_ms(TICK_MS)
        .retention_ms(Some(10 * TICK_MS))
        .build();
    assert!(matches!(config, Err(gossip::ConfigError::Retention { .. })));
}
