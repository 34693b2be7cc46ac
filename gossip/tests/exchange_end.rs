//! Exchange ends: every exchange a node sends in ends exactly once on that
//! node, after its last frame in it, whatever the network loses or
//! reorders. A transport closes the exchange's stream on that word, so an
//! end too early would cut off a frame and a missing one would hold a stream
//! open until it idles out.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use gossip::{Config, ExchangeEnd, Member, Node, Transmit};
use lww_crdt::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const NODES: u64 = 4;
const TIMEOUT_MS: u64 = 500;

/// An exchange as one node sees it: (node, peer, exchange, whether the node
/// opened it).
type Side = (u64, u64, u64, bool);

enum Out {
    Frame(Side),
    End(Side),
}

struct Net {
    nodes: Vec<Node>,
    /// In flight: (from, frame).
    queue: Vec<(u64, Transmit)>,
    /// Per node, its frames and ends in the order it produced them.
    log: Vec<Out>,
}

impl Net {
    fn collect(&mut self, index: u64) {
        let node = &mut self.nodes[index as usize];
        while let Some(t) = node.poll_transmit() {
            let side = (index, t.to.get(), t.exchange, t.from_initiator);
            self.log.push(Out::Frame(side));
            self.queue.push((index, t));
        }
        while let Some(ExchangeEnd {
            peer,
            exchange,
            from_initiator,
        }) = node.poll_exchange_end()
        {
            let side = (index, peer.get(), exchange, from_initiator);
            self.log.push(Out::End(side));
        }
    }

    fn deliver(&mut self, rng: &mut SmallRng, now: u64, loss: f64) {
        while !self.queue.is_empty() {
            let (from, t) = self
                .queue
                .swap_remove(rng.random_range(0..self.queue.len()));
            if rng.random_bool(loss) {
                continue;
            }
            let to = t.to.get();
            let _ = self.nodes[to as usize].handle_message(NodeId::new(from), &t.payload, now);
            self.collect(to);
        }
    }
}

fn run(seed: u64, loss: f64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let member = |id| Member {
        id: NodeId::new(id),
        address: String::new(),
    };
    let nodes = (0..NODES)
        .map(|id| {
            let config = Config::builder(NodeId::new(id))
                .tick_interval_ms(100)
                .exchange_timeout_ms(TIMEOUT_MS)
                .max_message_bytes(1_024)
                .build()
                .unwrap();
            Node::new(config, (0..NODES).filter(|&p| p != id).map(member))
        })
        .collect();
    let mut net = Net {
        nodes,
        queue: Vec::new(),
        log: Vec::new(),
    };
    let mut now = 1_000;
    for round in 0..60 {
        for _ in 0..rng.random_range(0..20) {
            let node = rng.random_range(0..NODES) as usize;
            let key = format!("key-{}", rng.random_range(0..200));
            net.nodes[node]
                .put(key, format!("value-{round}"), now)
                .unwrap();
        }
        for index in 0..NODES {
            net.nodes[index as usize].handle_tick(now);
            net.collect(index);
        }
        // Some frames wait a round or more: late, crossing later exchanges.
        if rng.random_bool(0.7) {
            net.deliver(&mut rng, now + 5, loss);
        }
        now += 100;
    }
    net.deliver(&mut rng, now, loss);
    // Past every deadline: whatever is still open expires and ends. The
    // exchanges this last tick opens are left out.
    now += TIMEOUT_MS + 1;
    for index in 0..NODES {
        net.nodes[index as usize].handle_tick(now);
        net.collect(index);
    }
    let opened_last: HashSet<Side> = net
        .queue
        .iter()
        .map(|(from, t)| (*from, t.to.get(), t.exchange, t.from_initiator))
        .collect();

    let mut ended: HashMap<Side, usize> = HashMap::new();
    let mut sent = HashSet::new();
    for out in &net.log {
        match *out {
            Out::Frame(side) => {
                assert!(
                    !ended.contains_key(&side),
                    "seed {seed}: a frame after the end of {side:?}"
                );
                sent.insert(side);
            }
            Out::End(side) => *ended.entry(side).or_default() += 1,
        }
    }
    for side in &sent {
        if opened_last.contains(side) {
            continue;
        }
        assert_eq!(
            ended.get(side),
            Some(&1),
            "seed {seed}: {side:?} sent frames and ended {:?} times",
            ended.get(side)
        );
    }
    assert!(
        ended.keys().all(|side| sent.contains(side)),
        "seed {seed}: an end for an exchange without frames"
    );
    assert!(sent.len() > 100, "seed {seed}: too few exchanges to judge");
}

#[test]
fn every_exchange_ends_once_after_its_last_frame() {
    for seed in 0..20 {
        run(seed, 0.0);
    }
}

#[test]
fn every_exchange_ends_once_after_its_last_frame_with_loss_and_reordering() {
    for seed in 0..20 {
        run(seed, 0.2);
    }
}
