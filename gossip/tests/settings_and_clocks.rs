//! What members check about each other besides liveness: the settings that
//! must agree, and how far apart their clocks are.
//!
//! - Members whose `max_message_bytes` differ refuse to exchange, and both
//!   say so once, naming the two values: before, the larger one sent the
//!   smaller one entries it refused to read, so every exchange between them
//!   failed, silently, from the first large entry on.
//! - Each member estimates every peer's clock offset from the exchanges it
//!   opens. A member whose clock is beyond the maximum offset from most of
//!   its peers refuses client writes until it is back in range, and its
//!   peers report the offset.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, builder, member};
use gossip::codec;
use gossip::{Event, Message, MessageKind, MessageLimits, Node, Syn, SynFlags, WriteError};
use lww_crdt::NodeId;

const T: u64 = 1_000_000;
/// The default gossip interval.
const ROUND: u64 = 1_000;

fn run(net: &mut Net, now: &mut u64, rounds: u64) {
    for _ in 0..rounds {
        *now += ROUND;
        net.round(*now);
    }
}

#[test]
fn members_with_different_message_limits_refuse_each_other_and_both_say_so_once() {
    let limits = [64 * 1024, 64 * 1024, 16 * 1024];
    let nodes = (0..3u64)
        .map(|id| {
            let config = builder(id)
                .max_message_bytes(limits[id as usize])
                .fanout(2)
                .build()
                .unwrap();
            Node::new(config, (0..3).filter(|&p| p != id).map(member))
        })
        .collect();
    let mut net = Net::new(nodes);
    let mut now = T;
    // An entry that fits node 0's limit but not node 2's, then small ones.
    net.nodes[0]
        .put("big".into(), "x".repeat(20_000), now)
        .unwrap();
    for i in 0..5 {
        net.nodes[0]
            .put(format!("after-{i}"), i.to_string(), now)
            .unwrap();
    }
    net.nodes[2].put("small".into(), "s".into(), now).unwrap();
    run(&mut net, &mut now, 30);

    // The members that agree replicate everything, the large entry and the
    // ones written after it alike.
    assert_eq!(net.nodes[1].get("big").map(str::len), Some(20_000));
    assert_eq!(net.nodes[1].get("after-4"), Some("4"));
    // Nothing crosses between members that disagree: no frame was refused
    // unread, and each side reported the other once.
    assert!(net.refused.is_empty(), "{:?}", net.refused);
    assert_eq!(net.nodes[2].get("after-0"), None);
    assert_eq!(net.nodes[0].get("small"), None);
    let reports = |net: &Net, at: usize, peer: u64| {
        net.events
            .iter()
            .filter(|(node, event)| {
                *node == at
                    && matches!(event, Event::SettingsDiffer { peer: p, .. } if *p == NodeId::new(peer))
            })
            .map(|(_, event)| event.clone())
            .collect::<Vec<_>>()
    };
    let differ = |peer: u64, ours: u32, theirs: u32| Event::SettingsDiffer {
        peer: NodeId::new(peer),
        max_message_bytes: MessageLimits { ours, theirs },
    };
    assert_eq!(reports(&net, 0, 2), [differ(2, 65_536, 16_384)]);
    assert_eq!(reports(&net, 2, 0), [differ(0, 16_384, 65_536)]);
    assert_eq!(reports(&net, 2, 1), [differ(1, 16_384, 65_536)]);
    assert!(reports(&net, 0, 1).is_empty() && reports(&net, 1, 0).is_empty());

    // Node 0 leaves, and goes on gossiping while it drains: node 2, which
    // marks it Left, says nothing more about a member that has gone.
    net.nodes[0].leave(now);
    run(&mut net, &mut now, 10);
    assert!(
        net.events
            .iter()
            .any(|(at, event)| *at == 2 && *event == Event::PeerLeft(NodeId::new(0)))
    );
    assert_eq!(reports(&net, 2, 0), [differ(0, 16_384, 65_536)]);
}

fn five() -> Net {
    Net::full(5, |b| b.fanout(2).max_clock_offset_ms(500))
}

#[test]
fn a_member_whose_clock_runs_ahead_refuses_writes_until_it_is_back_and_its_peers_report_it() {
    let mut net = five();
    let mut now = T;
    run(&mut net, &mut now, 5);
    net.skew[4] = 2_000;
    // Clocks are asked for on one tick in ten: enough ticks for every pair.
    run(&mut net, &mut now, 100);

    // Its peers measured it 2 s ahead and warned once each; they still
    // take writes.
    for peer in 0..4 {
        let state = net.nodes[peer]
            .peers()
            .into_iter()
            .find(|p| p.member.id == NodeId::new(4))
            .unwrap();
        assert_eq!(state.clock_offset_ms, Some(2_000), "node {peer}");
        assert!(!net.nodes[peer].clock_status().out_of_range);
        let warnings = net.events.iter().filter(|(at, event)| {
            *at == peer
                && matches!(event, Event::ClockOffset { peer: p, offset_ms: 2_000, skewed: true } if *p == NodeId::new(4))
        });
        assert_eq!(warnings.count(), 1, "node {peer}");
        assert!(
            net.nodes[peer]
                .put("ok".into(), "1".into(), now + 1)
                .is_ok()
        );
    }
    // It measured every peer 2 s behind and refuses client writes.
    let status = net.nodes[4].clock_status();
    assert!(status.out_of_range);
    assert_eq!(status.median_offset_ms, Some(-2_000));
    let local = net.local(4, now);
    assert_eq!(
        net.nodes[4].put("k".into(), "v".into(), local),
        Err(WriteError::ClockOutOfRange {
            peers_beyond: 4,
            peers_measured: 4,
            median_offset_ms: -2_000,
            max_offset_ms: 500,
        })
    );
    assert!(net.nodes[4].delete("k".into(), local).is_err());
    assert!(
        net.events
            .iter()
            .any(|(at, event)| *at == 4 && matches!(event, Event::OwnClock(s) if s.out_of_range))
    );

    // Its clock is set right: it takes writes again once it has measured
    // most peers anew, and its write reaches everyone.
    net.skew[4] = 0;
    run(&mut net, &mut now, 100);
    assert!(!net.nodes[4].clock_status().out_of_range);
    net.nodes[4].put("k".into(), "v".into(), now).unwrap();
    run(&mut net, &mut now, 10);
    for node in &net.nodes {
        assert_eq!(node.get("k"), Some("v"));
    }
    assert!(
        net.events
            .iter()
            .any(|(at, event)| *at == 4 && matches!(event, Event::OwnClock(s) if !s.out_of_range))
    );
}

#[test]
fn a_member_whose_clock_runs_behind_refuses_writes_too() {
    let mut net = five();
    let mut now = T;
    run(&mut net, &mut now, 5);
    net.skew[2] = -2_000;
    run(&mut net, &mut now, 100);
    let local = net.local(2, now);
    assert!(matches!(
        net.nodes[2].put("k".into(), "v".into(), local),
        Err(WriteError::ClockOutOfRange {
            median_offset_ms: 2_000,
            ..
        })
    ));
    assert!(net.nodes[0].put("k".into(), "v".into(), now).is_ok());
}

#[test]
fn clocks_within_the_maximum_offset_are_in_range_everywhere() {
    let mut net = five();
    for (i, skew) in [-250, 250, 0, 100, -100].into_iter().enumerate() {
        net.skew[i] = skew;
    }
    let mut now = T;
    run(&mut net, &mut now, 100);
    for (i, node) in net.nodes.iter_mut().enumerate() {
        assert!(!node.clock_status().out_of_range, "node {i}");
        let local = now.saturating_add_signed([-250, 250, 0, 100, -100][i]);
        node.put(format!("k{i}"), "v".into(), local).unwrap();
    }
    assert!(
        !net.events
            .iter()
            .any(|(_, event)| matches!(event, Event::OwnClock(_)))
    );
}

/// The `Syn`s node 0 sends node 1 among the queued frames, decoded, in order.
fn syns_to_one(net: &mut Net) -> Vec<Syn> {
    let mut held = Vec::new();
    while let Some(frame) = net.hold() {
        held.push(frame);
    }
    let syns = held
        .iter()
        .filter(|(from, t)| *from == 0 && t.to == NodeId::new(1) && t.kind == MessageKind::Syn)
        .map(|(_, t)| match codec::decode(&t.payload, 1 << 20).unwrap() {
            Message::Syn(syn) => syn,
            other => panic!("not a Syn: {other:?}"),
        })
        .collect();
    for frame in held {
        net.release(frame);
    }
    syns
}

#[test]
fn limits_travel_until_found_equal_and_again_in_a_new_life() {
    let config = |id: u64, incarnation: u32| {
        builder(id)
            .fanout(1)
            .incarnation(incarnation)
            .build()
            .unwrap()
    };
    let mut net = Net::new(vec![
        Node::new(config(0, 0), [member(1)]),
        Node::new(config(1, 0), [member(0)]),
    ]);
    let mut now = T;
    let limit = Some(1u32 << 20);
    net.tick(0, now);
    assert_eq!(syns_to_one(&mut net)[0].max_message_bytes, limit);
    net.pump(now);
    // Found equal: left out from now on, and the clock is asked for only
    // every ten ticks.
    let mut asked = 0;
    for _ in 0..20 {
        now += ROUND;
        net.tick(0, now);
        let syns = syns_to_one(&mut net);
        assert!(syns.iter().all(|syn| syn.max_message_bytes.is_none()));
        asked += syns
            .iter()
            .filter(|syn| syn.flags.contains(SynFlags::WANTS_CLOCK))
            .count();
        net.pump(now);
    }
    assert_eq!(asked, 2);

    // Node 1 restarts empty, in a new life, and writes. Node 0's next Syn
    // still leaves the limit out; node 1 asks for it, gets it in the Syn
    // after, and its write reaches node 0.
    net.nodes[1] = Node::new(config(1, 1), [member(0)]);
    net.nodes[1].put("k".into(), "v".into(), now).unwrap();
    let refused_before = net.nodes[0].metrics().messages_rejected;
    for _ in 0..3 {
        now += ROUND;
        net.tick(0, now);
        net.pump(now);
    }
    assert_eq!(net.nodes[0].get("k"), Some("v"));
    assert_eq!(net.nodes[0].metrics().messages_rejected, refused_before);
    assert!(
        !net.events
            .iter()
            .any(|(_, event)| matches!(event, Event::SettingsDiffer { .. }))
    );
}

#[test]
fn a_member_heard_only_from_members_whose_limit_differs_has_not_joined() {
    let config = |id: u64, limit: usize, founder: bool| {
        builder(id)
            .max_message_bytes(limit)
            .join_before_writing(true)
            .founder(founder)
            .build()
            .unwrap()
    };
    let mut net = Net::new(vec![
        Node::new(config(0, 1 << 20, true), [member(1)]),
        Node::new(config(1, 1 << 16, false), [member(0)]),
    ]);
    let mut now = T;
    run(&mut net, &mut now, 10);
    assert!(net.nodes[0].is_joined(), "it founded the cluster");
    assert!(!net.nodes[1].is_joined());
    assert_eq!(
        net.nodes[1].put("k".into(), "v".into(), now),
        Err(WriteError::NotJoined)
    );
}

/// A node joining with a clock 2 s ahead takes no write at any point: it
/// has not joined until it has measured enough peers to judge its clock,
/// and by then it knows its clock is out of range. Before, it took writes
/// from the first answer on, and its stamps beat writes made elsewhere up
/// to 2 s later.
#[test]
fn a_node_joining_with_a_skewed_clock_never_takes_a_write() {
    let config = |id: u64| {
        builder(id)
            .fanout(2)
            .join_before_writing(true)
            .founder(id == 0)
            .max_clock_offset_ms(500)
            .build()
            .unwrap()
    };
    let nodes = (0..5u64)
        .map(|id| Node::new(config(id), (0..id).map(member)))
        .collect();
    let mut net = Net::new(nodes);
    net.skew[4] = 2_000;
    let mut now = T;
    let mut refusals = Vec::new();
    for _ in 0..50 {
        now += ROUND;
        net.round(now);
        let local = net.local(4, now);
        match net.nodes[4].put("k".into(), "v".into(), local) {
            Err(err) => refusals.push(err),
            Ok(stamp) => panic!("took a write stamped {stamp:?} after {refusals:?}"),
        }
    }
    assert_eq!(refusals[0], WriteError::NotJoined);
    assert!(matches!(
        refusals.last(),
        Some(WriteError::ClockOutOfRange { .. })
    ));
    assert!(net.nodes[1].is_joined() && net.nodes[3].is_joined());
    net.nodes[1].put("k".into(), "v".into(), now).unwrap();
}
