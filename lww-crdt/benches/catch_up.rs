//! Where a fresh replica's catch-up time goes: decoding one delta of
//! 1,000,000 entries (16-byte keys, 100-byte values) and applying it to an
//! empty map, phase by phase, with the minor page faults each phase took.
//!
//! The first pass builds the receiving map in memory this process never
//! used, as a node catching up does; the later passes reuse what the pass
//! before freed, which is what a benchmark loop usually measures. A last line
//! writes one byte into every page of a fresh buffer as large as the map, so
//! that the cost of a fault on this machine is measured in the same run.
//!
//! Run with `cargo bench -p lww-crdt --bench catch_up`; it prints the table.
//! Faults are read from `/proc/self/stat` (Linux); elsewhere they show as 0.

use std::hint::black_box;
use std::time::{Duration, Instant};

use lww_crdt::{Budget, Delta, LwwMap, VersionVector};

mod common;
use common::{key, stamp, value};

const ENTRIES: usize = 1_000_000;
const PASSES: usize = 3;
const PAGE: usize = 4096;

/// Minor page faults this process has taken so far.
fn minor_faults() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is the first, minflt the eighth.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// Runs `phase`, returning its result, its time and its faults.
fn measured<T>(phase: impl FnOnce() -> T) -> (T, Duration, u64) {
    let faults = minor_faults();
    let start = Instant::now();
    let result = phase();
    (result, start.elapsed(), minor_faults() - faults)
}

fn row(label: &str, time: Duration, faults: u64) {
    let ns_per_entry = time.as_nanos() as f64 / ENTRIES as f64;
    println!(
        "{label:<28} {:>8.1} ms {ns_per_entry:>7.0} ns/entry {faults:>8} faults",
        time.as_secs_f64() * 1e3
    );
}

fn main() {
    let config = bincode::config::standard();
    let mut source = LwwMap::new();
    for i in 0..ENTRIES {
        source.put(key(i), value(i), stamp(i as u64, 1));
    }
    let delta = source.delta_since(&VersionVector::new(), Budget::UNLIMITED);
    let bytes = bincode::serde::encode_to_vec(&delta, config).expect("a delta encodes");
    // Kept until the end: freed, its strings would be the first pass's.
    let sent = delta;
    println!(
        "one delta of {ENTRIES} entries, {:.1} MiB encoded",
        bytes.len() as f64 / f64::from(1 << 20)
    );
    let mut map_bytes = 0;
    for pass in 1..=PASSES {
        let memory = if pass == 1 {
            "fresh memory"
        } else {
            "reused memory"
        };
        let ((decoded, _), decode_time, decode_faults) = measured(|| {
            bincode::serde::decode_from_slice::<Delta<String, String>, _>(&bytes, config)
                .expect("the delta decodes")
        });
        let (map, apply_time, apply_faults) = measured(|| {
            let mut map = LwwMap::new();
            map.apply(decoded);
            map
        });
        assert_eq!(map.len(), ENTRIES);
        if pass == 1 {
            map_bytes = (decode_faults + apply_faults) as usize * PAGE;
        }
        println!("pass {pass}, {memory}:");
        row("  decode", decode_time, decode_faults);
        row("  apply", apply_time, apply_faults);
        row(
            "  decode + apply",
            decode_time + apply_time,
            decode_faults + apply_faults,
        );
        drop(black_box(map));
    }
    drop(sent);
    // The baseline: faulting in as many fresh pages as pass 1 did, and nothing else.
    let (_, touch_time, touch_faults) = measured(|| {
        let mut pages = vec![0_u8; map_bytes];
        for page in pages.chunks_mut(PAGE) {
            page[0] = 1;
        }
        black_box(pages)
    });
    println!(
        "touching {:.0} MiB of fresh pages: {:.1} ms, {touch_faults} faults, {:.2} us/fault",
        map_bytes as f64 / f64::from(1 << 20),
        touch_time.as_secs_f64() * 1e3,
        touch_time.as_secs_f64() * 1e6 / touch_faults.max(1) as f64
    );
}
