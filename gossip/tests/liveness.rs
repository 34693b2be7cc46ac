//! Liveness: how a node treats a peer that stops answering.
//!
//! Node 0 has two peers, node 1 (always up) and node 2, which goes
//! unreachable. Every exchange node 0 opens with node 2 times out; after 2
//! in a row node 2 is suspect, after 4 it is down (the default thresholds),
//! each announced by an event. From then on node 0 contacts it only by the
//! probe every 10 ticks, rather than on half its ticks: over 200 rounds it
//! sends it about a tenth as many `Syn`s as it sends node 1, which it
//! contacts every tick. When node 2 is back, the first frame node 0 gets
//! from it (an answer to a probe, or its own `Syn`) makes it alive again.

#![allow(clippy::unwrap_used)]

mod common;

use common::Net;
use gossip::{Event, Liveness, MessageKind};
use lww_crdt::NodeId;

const T: u64 = 1_000_000;
const ROUND: u64 = 1_000;
const A: usize = 0;
const ALIVE: usize = 1;
const AWAY: usize = 2;

fn liveness(net: &Net, of: usize) -> Liveness {
    net.nodes[A].liveness(NodeId::new(of as u64)).unwrap()
}

fn net() -> Net {
    Net::full(3, |b| b.fanout(1))
}

#[test]
fn an_unresponsive_peer_is_suspected_then_down_then_only_probed_and_alive_on_its_first_answer() {
    let mut net = net();
    let mut now = T;
    for _ in 0..5 {
        now += ROUND;
        net.round(now);
    }
    assert_eq!(liveness(&net, AWAY), Liveness::Alive);

    net.down[AWAY] = true;
    let start = net.log.len();
    let mut suspect_at = None;
    let mut down_at = None;
    for round in 0..200 {
        now += ROUND;
        net.round(now);
        match liveness(&net, AWAY) {
            Liveness::Suspect if suspect_at.is_none() => suspect_at = Some(round),
            Liveness::Down if down_at.is_none() => down_at = Some(round),
            _ => {}
        }
        assert_eq!(liveness(&net, ALIVE), Liveness::Alive);
    }
    let (suspect_at, down_at) = (suspect_at.unwrap(), down_at.unwrap());
    assert!(
        suspect_at < down_at,
        "suspect at {suspect_at}, down at {down_at}"
    );
    let events: Vec<&Event> = net.events[..]
        .iter()
        .filter(|(node, _)| *node == A)
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::PeerSuspect(_) | Event::PeerDown(_)))
        .collect();
    let away = NodeId::new(AWAY as u64);
    assert_eq!(
        events,
        [&Event::PeerSuspect(away), &Event::PeerDown(away)],
        "one suspicion, then down"
    );
    let peer = net.nodes[A]
        .peers()
        .into_iter()
        .find(|p| p.member.id == away)
        .unwrap();
    assert!(peer.failures >= 4, "{peer:?}");

    let syns = |net: &Net, to: usize| {
        net.log[start..]
            .iter()
            .filter(|s| s.from == A && s.to == to && s.kind == MessageKind::Syn)
            .count()
    };
    let (to_away, to_alive) = (syns(&net, AWAY), syns(&net, ALIVE));
    // Before suspicion, fan-out 1 picks either peer; after, node 2 gets
    // only the probe every 10 ticks, and node 1 every tick.
    assert!(to_alive >= 180, "{to_alive} Syns to the live peer");
    assert!(
        (15..=30).contains(&to_away),
        "{to_away} Syns to the unresponsive peer (vs {to_alive})"
    );
    assert!(to_away * 6 <= to_alive);

    // Back: the first frame from node 2 that node 0 handles makes it alive.
    net.down[AWAY] = false;
    net.nodes[AWAY].forget_exchanges();
    let mut revived = false;
    for _ in 0..20 {
        now += ROUND;
        net.tick_all(now);
        while let Some(sent) = net.step(now) {
            if sent.from == AWAY && sent.to == A && sent.delivered {
                assert_eq!(liveness(&net, AWAY), Liveness::Alive, "after {sent:?}");
                assert!(
                    net.events
                        .iter()
                        .any(|(n, e)| *n == A && *e == Event::PeerUp(away))
                );
                revived = true;
                break;
            }
            assert_eq!(liveness(&net, AWAY), Liveness::Down);
        }
        net.pump(now);
        if revived {
            break;
        }
    }
    assert!(revived, "node 2 never reached node 0 again");
    let peer = net.nodes[A]
        .peers()
        .into_iter()
        .find(|p| p.member.id == away)
        .unwrap();
    assert_eq!(peer.failures, 0);
}

#[test]
fn a_down_peer_that_answers_a_probe_is_alive_at_once() {
    let mut net = net();
    let mut now = T;
    net.down[AWAY] = true;
    while liveness(&net, AWAY) != Liveness::Down {
        now += ROUND;
        net.round(now);
        assert!(now < T + 100 * ROUND, "never went down");
    }
    // Node 2 comes back but stays silent (it does not tick): only node 0's
    // probe can reach it, and its answer is the first frame node 0 gets.
    net.down[AWAY] = false;
    let first_probe = net.log.len();
    let mut answered = false;
    for _ in 0..20 {
        now += ROUND;
        net.tick(A, now);
        net.tick(ALIVE, now);
        while let Some(sent) = net.step(now) {
            if sent.from == AWAY && sent.to == A {
                assert_eq!(sent.kind, MessageKind::SynAck);
                assert_eq!(liveness(&net, AWAY), Liveness::Alive);
                answered = true;
            }
        }
        if answered {
            break;
        }
    }
    assert!(answered, "no probe within 20 ticks");
    let probes = net.log[first_probe..]
        .iter()
        .filter(|s| s.from == A && s.to == AWAY && s.kind == MessageKind::Syn)
        .count();
    assert_eq!(probes, 1);
    // Alive again: fan-out picks it like any peer.
    let before = net.log.len();
    for _ in 0..20 {
        now += ROUND;
        net.round(now);
    }
    let picked = net.log[before..]
        .iter()
        .filter(|s| s.from == A && s.to == AWAY && s.kind == MessageKind::Syn)
        .count();
    assert!(picked >= 5, "picked {picked} times in 20 rounds");
}
