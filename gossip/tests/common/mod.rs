//! A hand-driven network of sans-IO nodes for the gossip tests: node `i`
//! has id `i`, frames are carried one at a time in the order they were sent,
//! and every frame is logged with its kind, size and fate. A node marked
//! down neither ticks nor sends nor receives (its frames are dropped), as an
//! unreachable node in the simulator. Each node's clock may be skewed from
//! the network's time.

#![allow(dead_code)]

use std::collections::VecDeque;

use gossip::{Config, ConfigBuilder, Event, Member, MessageError, MessageKind, Node, Transmit};
use lww_crdt::NodeId;

/// A member with no address.
pub(crate) fn member(id: u64) -> Member {
    Member {
        id: NodeId::new(id),
        address: String::new(),
    }
}

/// A config builder for node `id`, with defaults.
pub(crate) fn builder(id: u64) -> ConfigBuilder {
    Config::builder(NodeId::new(id))
}

/// One frame handed to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) kind: MessageKind,
    pub(crate) bytes: usize,
    /// Whether it reached a node that was up.
    pub(crate) delivered: bool,
}

#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) down: Vec<bool>,
    /// Per node, how far its clock is off the network's time, in ms.
    pub(crate) skew: Vec<i64>,
    pub(crate) log: Vec<Sent>,
    /// Every event, with the node that raised it.
    pub(crate) events: Vec<(usize, Event)>,
    /// Every refused frame, with its receiver.
    pub(crate) refused: Vec<(usize, MessageError)>,
    queue: VecDeque<(usize, Transmit)>,
}

impl Net {
    pub(crate) fn new(nodes: Vec<Node>) -> Self {
        let down = vec![false; nodes.len()];
        let skew = vec![0; nodes.len()];
        Self {
            nodes,
            down,
            skew,
            log: Vec::new(),
            events: Vec::new(),
            refused: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// `n` nodes that all know each other, each built from `configure`d
    /// defaults.
    pub(crate) fn full(n: u64, configure: impl Fn(ConfigBuilder) -> ConfigBuilder) -> Self {
        let nodes = (0..n)
            .map(|id| {
                let config = configure(builder(id)).build().expect("a valid config");
                Node::new(config, (0..n).filter(|&p| p != id).map(member))
            })
            .collect();
        Self::new(nodes)
    }

    /// Ticks node `index` (unless down) and queues what it sends.
    pub(crate) fn tick(&mut self, index: usize, now_ms: u64) {
        if self.down[index] {
            return;
        }
        let local = self.local(index, now_ms);
        self.nodes[index].handle_tick(local);
        self.collect(index);
    }

    /// Ticks every node that is up, in id order.
    pub(crate) fn tick_all(&mut self, now_ms: u64) {
        for index in 0..self.nodes.len() {
            self.tick(index, now_ms);
        }
    }

    /// Carries one queued frame; returns it (as logged), or `None` if the
    /// queue is empty.
    pub(crate) fn step(&mut self, now_ms: u64) -> Option<Sent> {
        let (from, transmit) = self.queue.pop_front()?;
        let to = transmit.to.get() as usize;
        let delivered = to < self.nodes.len() && !self.down[from] && !self.down[to];
        let sent = Sent {
            from,
            to,
            kind: transmit.kind,
            bytes: transmit.payload.len(),
            delivered,
        };
        self.log.push(sent.clone());
        if delivered {
            let from_id = NodeId::new(from as u64);
            let local = self.local(to, now_ms);
            if let Err(error) = self.nodes[to].handle_message(from_id, &transmit.payload, local) {
                self.refused.push((to, error));
            }
            self.collect(to);
        }
        Some(sent)
    }

    /// The next frame to carry, as `(from, to, kind, bytes)`.
    pub(crate) fn peek(&self) -> Option<(usize, usize, MessageKind, usize)> {
        self.queue.front().map(|(from, transmit)| {
            let to = transmit.to.get() as usize;
            (*from, to, transmit.kind, transmit.payload.len())
        })
    }

    /// Takes the next frame off the queue without carrying it.
    pub(crate) fn hold(&mut self) -> Option<(usize, Transmit)> {
        self.queue.pop_front()
    }

    /// Shuffles the queued frames with `seed`.
    pub(crate) fn shuffle(&mut self, seed: u64) {
        let mut frames: Vec<_> = self.queue.drain(..).collect();
        let mut state = seed | 1;
        for i in (1..frames.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            frames.swap(i, (state % (i as u64 + 1)) as usize);
        }
        self.queue.extend(frames);
    }

    /// Queues a held frame behind everything queued now.
    pub(crate) fn release(&mut self, held: (usize, Transmit)) {
        self.queue.push_back(held);
    }

    /// Carries frames until none is left.
    pub(crate) fn pump(&mut self, now_ms: u64) {
        for index in 0..self.nodes.len() {
            self.collect(index);
        }
        let mut steps = 0;
        while self.step(now_ms).is_some() {
            steps += 1;
            assert!(steps < 1_000_000, "frames never stop");
        }
    }

    /// One gossip round at `now_ms`: every node up ticks, then every frame
    /// is carried.
    pub(crate) fn round(&mut self, now_ms: u64) {
        self.tick_all(now_ms);
        self.pump(now_ms);
    }

    /// Frames of `kind` from `from` to `to` in the log.
    pub(crate) fn count(&self, from: usize, to: usize, kind: MessageKind) -> usize {
        self.log
            .iter()
            .filter(|s| s.from == from && s.to == to && s.kind == kind)
            .count()
    }

    /// Node `index`'s clock reading at network time `now_ms`.
    pub(crate) fn local(&self, index: usize, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.skew[index])
    }

    fn collect(&mut self, index: usize) {
        while let Some(transmit) = self.nodes[index].poll_transmit() {
            self.queue.push_back((index, transmit));
        }
        while self.nodes[index].poll_exchange_end().is_some() {}
        while let Some(event) = self.nodes[index].poll_event() {
            self.events.push((index, event));
        }
    }
}
