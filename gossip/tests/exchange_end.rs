//! Exchange ends: every exchange a node sends in ends exactly once on that
//! node, after its last frame in it, whatever the network loses, delays or
//! reorders; and with nothing lost, every exchange ends on both sides as soon
//! as it is done, not at its deadline. A transport closes the exchange's
//! stream on that word, so an end too early would cut off a frame, and a
//! missing or late one holds a stream, and a served-exchange slot, open.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use gossip::{Config, ExchangeEnd, Member, Node, Transmit};
use lww_crdt::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const NODES: u64 = 4;
const ROUND_MS: u64 = 100;
const TIMEOUT_MS: u64 = 500;

/// An exchange as one node sees it: (node, peer, exchange, whether the node
/// opened it).
type Side = (u64, u64, u64, bool);

#[derive(Clone, Copy)]
enum Out {
    Frame(Side),
    End(Side),
}

struct Net {
    nodes: Vec<Node>,
    /// In flight: (from, frame).
    queue: Vec<(u64, Transmit)>,
    /// The frames and ends of every node, in the order each produced them,
    /// with the time.
    log: Vec<(Out, u64)>,
}

impl Net {
    fn collect(&mut self, index: u64, now: u64) {
        let node = &mut self.nodes[index as usize];
        while let Some(t) = node.poll_transmit() {
            let side = (index, t.to.get(), t.exchange, t.from_initiator);
            self.log.push((Out::Frame(side), now));
            self.queue.push((index, t));
        }
        while let Some(ExchangeEnd {
            peer,
            exchange,
            from_initiator,
        }) = node.poll_exchange_end()
        {
            let side = (index, peer.get(), exchange, from_initiator);
            self.log.push((Out::End(side), now));
        }
    }

    /// Delivers what is queued in random order: each frame is lost with
    /// probability `loss`, or held for a later call with probability `hold`.
    /// Answers join the queue and may go in the same call.
    fn deliver(&mut self, rng: &mut SmallRng, now: u64, loss: f64, hold: f64) {
        let mut held = Vec::new();
        while !self.queue.is_empty() {
            let (from, t) = self
                .queue
                .swap_remove(rng.random_range(0..self.queue.len()));
            if rng.random_bool(hold) {
                held.push((from, t));
                continue;
            }
            if rng.random_bool(loss) {
                continue;
            }
            let to = t.to.get();
            let _ = self.nodes[to as usize].handle_message(NodeId::new(from), &t.payload, now);
            self.collect(to, now);
        }
        self.queue = held;
    }
}

/// Random writes and rounds of gossip, then every deadline passed; checks
/// that frames and ends agree and returns the log. Node 0 starts knowing
/// only node 1, so member lists differ for a while and some `Ack`s carry
/// only members.
fn run(seed: u64, loss: f64, hold: f64) -> Vec<(Out, u64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let member = |id| Member {
        id: NodeId::new(id),
        address: String::new(),
    };
    let nodes = (0..NODES)
        .map(|id| {
            let config = Config::for_interval(NodeId::new(id), ROUND_MS, TIMEOUT_MS)
                .max_message_bytes(1_024)
                .build()
                .unwrap();
            let seeds: Vec<u64> = if id == 0 {
                vec![1]
            } else {
                (0..NODES).filter(|&p| p != id).collect()
            };
            Node::new(config, seeds.into_iter().map(member))
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
            net.collect(index, now);
        }
        net.deliver(&mut rng, now + 5, loss, hold);
        now += ROUND_MS;
    }
    net.deliver(&mut rng, now, loss, 0.0);
    // Past every deadline: whatever is still open expires and ends. The
    // exchanges this last tick opens are left out.
    now += TIMEOUT_MS + 1;
    for index in 0..NODES {
        net.nodes[index as usize].handle_tick(now);
        net.collect(index, now);
    }
    let opened_last: HashSet<Side> = net
        .queue
        .iter()
        .map(|(from, t)| (*from, t.to.get(), t.exchange, t.from_initiator))
        .collect();

    let mut ended: HashMap<Side, usize> = HashMap::new();
    let mut sent = HashSet::new();
    for (out, _) in &net.log {
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
    net.log
}

#[test]
fn every_exchange_ends_once_after_its_last_frame() {
    for seed in 0..20 {
        run(seed, 0.0, 0.0);
    }
}

#[test]
fn every_exchange_ends_once_after_its_last_frame_with_loss_delay_and_reordering() {
    for seed in 0..20 {
        run(seed, 0.2, 0.5);
    }
}

#[test]
fn with_nothing_lost_or_late_both_sides_end_in_the_round_the_exchange_began() {
    for seed in 0..20 {
        let log = run(seed, 0.0, 0.0);
        // (opener, other, exchange) -> when its first frame went.
        let mut began: HashMap<(u64, u64, u64), u64> = HashMap::new();
        let exchange_of = |(node, peer, exchange, opened): Side| {
            if opened {
                (node, peer, exchange)
            } else {
                (peer, node, exchange)
            }
        };
        for (out, at) in &log {
            if let Out::Frame(side) = *out {
                began.entry(exchange_of(side)).or_insert(*at);
            }
        }
        for (out, at) in &log {
            if let Out::End(side) = *out {
                let began = began[&exchange_of(side)];
                assert!(
                    *at < began + ROUND_MS,
                    "seed {seed}: {side:?} began at {began} ms and ended at {at} ms"
                );
            }
        }
    }
}
