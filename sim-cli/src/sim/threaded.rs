//! The same scenario with real concurrency: one gossip driver thread per
//! node over the threaded in-memory network, and client threads writing and
//! reading on every node while gossip runs. Judged by the same verification
//! as the deterministic engine; timings are wall-clock and so vary between
//! runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gossip::{Config, Member, Metrics, Node, NodeHandle, lock};
use lww_crdt::{NodeId, PhysicalClock, SystemClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport_mem::reference::Reference;
use transport_mem::{Faults, MemNetwork};

use crate::sim::error::SimError;
use crate::sim::report::{FaultStats, SimReport, Verification, WriteStats, assemble};
use crate::sim::scenario::{Scenario, WritePattern};
use crate::sim::verify::{Target, Verifier, fraction_caught_up};

/// A node's physical clock: the system clock shifted by its skew.
#[derive(Clone, Copy, Debug)]
struct SkewedClock(i64);

impl PhysicalClock for SkewedClock {
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms().saturating_add_signed(self.0)
    }
}

struct Shared {
    handles: Vec<NodeHandle>,
    available: Vec<AtomicBool>,
    reference: Mutex<Reference>,
    writes: Mutex<WriteStats>,
    reads: AtomicU64,
}

/// Runs `scenario` with one driver thread per node and
/// `scenario.client_threads` client threads.
pub(crate) fn simulate_threaded(
    scenario: &Scenario,
    mut on_round: impl FnMut(u64, f64),
) -> Result<SimReport, SimError> {
    let s = scenario;
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let (network, transports) = MemNetwork::new(s.nodes, Faults::NONE, s.seed);
    let members: Vec<Member> = (0..s.nodes)
        .map(|i| Member {
            id: NodeId::new(i as u64),
            address: String::new(),
        })
        .collect();
    let mut handles = Vec::with_capacity(s.nodes);
    let mut threads = Vec::with_capacity(s.nodes);
    for (index, transport) in transports.into_iter().enumerate() {
        let id = NodeId::new(index as u64);
        let mut builder = Config::for_interval(id, s.interval_ms, s.interval_ms * 3);
        if s.unoptimised {
            builder = builder.unoptimised();
        }
        let config = builder
            .fanout(s.fanout)
            .idle_fanout(s.idle_fanout)
            .max_message_bytes(s.max_message_bytes)
            .max_clock_offset_ms(s.max_clock_offset_ms)
            .seed(rng.random())
            .build()
            .map_err(transport_mem::ClusterError::from)?;
        let seeds = match s.seed_peers {
            None => members.clone(),
            Some(count) => members.iter().take(count).cloned().collect(),
        };
        let half = (s.clock_skew_ms / 2) as i64;
        let skew = if half > 0 {
            rng.random_range(-half..=half)
        } else {
            0
        };
        let (handle, thread) =
            gossip::spawn(Node::new(config, seeds), transport, SkewedClock(skew));
        handles.push(handle);
        threads.push(thread);
    }
    let shared = Arc::new(Shared {
        available: (0..s.nodes).map(|_| AtomicBool::new(true)).collect(),
        handles,
        reference: Mutex::new(Reference::new()),
        writes: Mutex::new(WriteStats::default()),
        reads: AtomicU64::new(0),
    });
    network.set_faults(Faults {
        loss: s.loss,
        duplicate: s.duplicate,
        reorder: 0.0,
    });

    let interval = Duration::from_millis(s.interval_ms);
    let start = Instant::now();
    let clients = spawn_clients(s, &shared, start, interval);

    let mut faults = FaultStats::default();
    let mut churned: Vec<bool> = vec![false; s.nodes];
    let mut curve = Vec::new();
    let mut converged_round = None;
    let faults_end = s.faults_end();
    let mut clients = Some(clients);
    for round in 0..s.rounds {
        apply_faults(
            s,
            round,
            &network,
            &shared,
            &mut churned,
            &mut rng,
            &mut faults,
        );
        let deadline = start + interval * (round as u32 + 1);
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        let writing_done = round + 1 > s.writes_end();
        if writing_done {
            if let Some(clients) = clients.take() {
                for client in clients {
                    let _ = client.join();
                }
            }
        }
        let fraction = caught_up(&shared);
        curve.push(fraction);
        on_round(round + 1, fraction);
        if writing_done && round + 1 >= faults_end && fraction >= 1.0 {
            converged_round = Some(round + 1);
            break;
        }
    }
    if let Some(clients) = clients.take() {
        for client in clients {
            let _ = client.join();
        }
    }
    for handle in &shared.handles {
        handle.shutdown();
    }
    for thread in threads {
        let _ = thread.join();
    }

    let reference = lock(&shared.reference).clone();
    let verification = verify(&shared.handles, &reference);
    let mut metrics = Metrics::default();
    for handle in &shared.handles {
        metrics.accumulate(&handle.metrics());
    }
    let mut writes = lock(&shared.writes).clone();
    writes.live_keys = reference.expected().len() as u64;
    let net = network.stats();
    let rounds_run = curve.len() as u64;
    Ok(assemble(
        None,
        s,
        curve,
        converged_round,
        rounds_run,
        writes,
        &metrics,
        &net,
        faults,
        verification,
    ))
}

fn spawn_clients(
    s: &Scenario,
    shared: &Arc<Shared>,
    start: Instant,
    interval: Duration,
) -> Vec<thread::JoinHandle<()>> {
    let clients = s.client_threads.max(1);
    (0..clients)
        .map(|client| {
            let shared = Arc::clone(shared);
            let s = s.clone();
            thread::spawn(move || run_client(&s, &shared, client, clients, start, interval))
        })
        .collect()
}

/// One client thread: its share of the writes, each on a random available
/// node, with a read on another random node after each.
fn run_client(
    s: &Scenario,
    shared: &Shared,
    client: usize,
    clients: usize,
    start: Instant,
    interval: Duration,
) {
    let mut rng = SmallRng::seed_from_u64(s.seed ^ (client as u64 + 1).wrapping_mul(0x9e37));
    let mine: Vec<usize> = (client..s.writes).step_by(clients).collect();
    for number in mine {
        if s.write_pattern == WritePattern::Steady {
            let due = interval.mul_f64(s.write_rounds as f64 * number as f64 / s.writes as f64);
            thread::sleep((start + due).saturating_duration_since(Instant::now()));
        }
        let key = format!("k{}", rng.random_range(0..s.keys));
        let delete = rng.random_bool(s.deletes);
        let value = format!("v{number}");
        let start_at = rng.random_range(0..s.nodes);
        let target = (0..s.nodes)
            .map(|offset| (start_at + offset) % s.nodes)
            .find(|&i| shared.available[i].load(Ordering::Relaxed));
        let Some(target) = target else {
            lock(&shared.writes).refused += 1;
            continue;
        };
        let handle = &shared.handles[target];
        let written = if delete {
            handle.delete(key.clone())
        } else {
            handle.put(key.clone(), value.clone())
        };
        let Ok(stamp) = written else {
            lock(&shared.writes).refused += 1;
            continue;
        };
        lock(&shared.reference).record(&key, stamp, (!delete).then_some(value));
        {
            let mut writes = lock(&shared.writes);
            writes.accepted += 1;
            writes.deletes += u64::from(delete);
        }
        let reader = rng.random_range(0..s.nodes);
        let _ = shared.handles[reader].get(&key);
        shared.reads.fetch_add(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_faults(
    s: &Scenario,
    round: u64,
    network: &MemNetwork,
    shared: &Shared,
    churned: &mut [bool],
    rng: &mut SmallRng,
    faults: &mut FaultStats,
) {
    let end = s.faults_end();
    let set = |index: usize, available: bool| {
        shared.available[index].store(available, Ordering::Relaxed);
        network.set_available(NodeId::new(index as u64), available);
    };
    if round >= end {
        if round == end {
            network.set_faults(Faults::NONE);
            for index in 0..s.nodes {
                set(index, true);
                network.set_group(NodeId::new(index as u64), 0);
            }
        }
        return;
    }
    if let Some((start, heal)) = s.partition {
        for index in 0..s.nodes {
            let side = u32::from(round >= start && round < heal && index >= s.nodes / 2);
            network.set_group(NodeId::new(index as u64), side);
        }
    }
    if s.unavailable > 0.0 && round < s.fault_rounds && round % s.churn_rounds == 0 {
        churned.iter_mut().for_each(|c| *c = false);
        let count = ((s.unavailable * s.nodes as f64).round() as usize).min(s.nodes);
        let mut chosen = 0;
        while chosen < count {
            let pick = rng.random_range(0..s.nodes);
            if !churned[pick] {
                churned[pick] = true;
                chosen += 1;
                faults.unavailable_periods += 1;
            }
        }
        for (index, &down) in churned.iter().enumerate() {
            set(index, !down);
        }
    }
}

/// The fraction of nodes that hold every write so far: all are live, as
/// this mode crashes none.
fn caught_up(shared: &Shared) -> f64 {
    let target = Target::of(&lock(&shared.reference));
    fraction_caught_up(
        shared
            .handles
            .iter()
            .map(|handle| handle.with_node(|node| target.reached_by(node))),
    )
}

fn verify(handles: &[NodeHandle], reference: &Reference) -> Verification {
    let mut verifier = Verifier::new(reference);
    for (index, handle) in handles.iter().enumerate() {
        handle.with_node(|node| verifier.check(index, node));
    }
    verifier.finish()
}
