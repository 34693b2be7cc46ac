//! Restart without state at cluster scale: a node of 100 crashed and
//! restarted empty under its old id takes a new incarnation each time, so
//! it writes under a new origin (`gossip::writer_origin`), never reusing a
//! stamp of an earlier life; every peer takes its new writes (overwrites,
//! new keys and deletes alike), and the cluster converges to the LWW
//! reference. The restarted node also gets back everything the others hold.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Monitor, Reference, assert_converged_to_reference, run_checked, run_until_converged};
use gossip::writer_origin;
use lww_crdt::{NodeId, Stamp};
use transport_mem::{Cluster, ClusterConfig};

const NODES: usize = 100;
const NODE: usize = 5;

fn put(cluster: &mut Cluster, reference: &mut Reference, key: &str, value: &str) -> Stamp {
    let stamp = cluster.put(NODE, key, value).unwrap();
    reference.record(key, stamp, Some(value.to_owned()));
    stamp
}

#[test]
fn a_node_restarted_empty_writes_under_a_new_origin_every_peer_takes() {
    let mut cluster = Cluster::new(ClusterConfig {
        nodes: NODES,
        seed: 9,
        ..ClusterConfig::default()
    })
    .unwrap();
    let mut reference = Reference::new();
    let mut monitor = Monitor::new();
    let mut issued: Vec<Stamp> = Vec::new();
    issued.push(put(&mut cluster, &mut reference, "a", "a-0"));
    issued.push(put(&mut cluster, &mut reference, "b", "b-0"));
    let stamp = cluster.put(40, "other", "from-40").unwrap();
    reference.record("other", stamp, Some("from-40".into()));
    run_until_converged(&mut cluster, &reference, &mut monitor, 40);

    for life in 1..=2u32 {
        cluster.crash(NODE).unwrap();
        run_checked(&mut cluster, &reference, &mut monitor, 3);
        cluster.restart(NODE).unwrap();
        let node = cluster.node(NODE).unwrap();
        assert_eq!(node.incarnation(), life);
        assert!(node.map().is_empty());
        let origin = writer_origin(NodeId::new(NODE as u64), life);
        assert_eq!(node.origin(), origin);

        let new = [
            put(&mut cluster, &mut reference, "a", &format!("a-{life}")),
            put(&mut cluster, &mut reference, &format!("new-{life}"), "x"),
        ];
        let deleted = cluster.delete(NODE, "b").unwrap();
        reference.record("b", deleted, None);
        for stamp in new.iter().chain([&deleted]) {
            assert_eq!(stamp.origin, origin);
            assert!(!issued.contains(stamp), "{stamp} reused");
            for peer in (0..NODES).filter(|&p| p != NODE) {
                let vector = cluster.node(peer).unwrap().version_vector();
                assert!(!vector.covers(*stamp), "peer {peer} would skip {stamp}");
            }
        }
        issued.extend(new);
        issued.push(deleted);

        let rounds = run_until_converged(&mut cluster, &reference, &mut monitor, 40);
        assert_converged_to_reference(&cluster, &reference);
        for i in 0..NODES {
            assert_eq!(
                cluster.get(i, "a"),
                Some(format!("a-{life}").as_str()),
                "node {i}"
            );
            assert_eq!(cluster.get(i, "b"), None, "node {i}");
            assert_eq!(cluster.get(i, "other"), Some("from-40"), "node {i}");
        }
        eprintln!("life {life}: converged in {rounds} rounds");
    }
}
