//! Memory per entry: `LwwMap` against plain hash maps holding the same pairs.
//!
//! A counting global allocator tracks live heap bytes (as requested from the
//! allocator: no allocator headers or size-class rounding). Each map is built
//! from clones of the same 1,000,000 pairs of 16-byte keys and 100-byte
//! values, each string allocated at exactly its length; the payload is the
//! sum of key and value lengths, and the overhead per entry is the live bytes
//! the map holds minus the payload, divided by the number of entries.
//!
//! A second table measures the shape of a large simulation, where thousands
//! of replicas each hold a small map written by many origins: 1,000 keys
//! written 2,000 times by origins drawn at random from 600 (about 580 of them
//! distinct), so most origins account for one or two entries. It reports the
//! live bytes per replica and, for the version vector alone, bytes per origin.
//!
//! Run with `cargo bench -p lww-crdt --bench memory`; it prints the tables.

// A global allocator needs `unsafe impl GlobalAlloc`. The workspace denies
// unsafe code and every library forbids it in its lib.rs; this bench binary is
// the one place that allows it, for the counting allocator below only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap as StdHashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashMap as FoldHashMap;
use lww_crdt::{HybridClock, LwwMap, ManualClock, NodeId, Replica, Stamp, VersionVector};

mod common;
use common::{KEY_LEN, SplitMix, VALUE_LEN, pairs, stamp};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded under the caller's contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Entry counts measured: the 1,000,000 of the target, and 2^20 + 1, where
/// `LwwMap`'s slot vector has just doubled (its least favourable size near
/// 1M; the plain maps have 2^21 buckets at both sizes).
const SIZES: [usize; 2] = [1_000_000, (1 << 20) + 1];

/// Live bytes held by what `build` returns, measured while it is alive.
fn measure<T>(build: impl FnOnce() -> T) -> usize {
    let before = live();
    let built = black_box(build());
    let held = live() - before;
    drop(built);
    held
}

fn main() {
    // Criterion passes `--bench` (and maybe a filter); this binary ignores
    // its arguments.
    for n in SIZES {
        table(n);
    }
    many_origins();
}

/// Measures every structure holding `n` pairs and prints the table.
fn table(n: usize) {
    let data = pairs(0..n);
    let payload: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(payload, n * (KEY_LEN + VALUE_LEN));

    let rows: Vec<(&str, usize)> = vec![
        (
            "HashMap<String, String> (std)",
            measure(|| {
                let mut map = StdHashMap::new();
                for (k, v) in &data {
                    map.insert(k.clone(), v.clone());
                }
                map
            }),
        ),
        (
            "hashbrown::HashMap<String, String>",
            measure(|| {
                let mut map = FoldHashMap::new();
                for (k, v) in &data {
                    map.insert(k.clone(), v.clone());
                }
                map
            }),
        ),
        (
            "LwwMap<String, String>, 1 origin",
            measure(|| {
                let mut map = LwwMap::new();
                for (i, (k, v)) in data.iter().enumerate() {
                    map.put(k.clone(), v.clone(), stamp(i as u64, 1));
                }
                map
            }),
        ),
        (
            "LwwMap<String, String>, 4 origins",
            measure(|| {
                let mut map = LwwMap::new();
                for (i, (k, v)) in data.iter().enumerate() {
                    map.put(k.clone(), v.clone(), stamp(i as u64, 1 + (i % 4) as u64));
                }
                map
            }),
        ),
        (
            "Replica<String, String> (ManualClock)",
            measure(|| {
                let clock = HybridClock::new(ManualClock::new(1_000));
                let mut replica: Replica<String, String, ManualClock> =
                    Replica::new(NodeId::new(1), clock);
                for (k, v) in &data {
                    replica
                        .put(k.clone(), v.clone())
                        .expect("far from the end of time");
                }
                replica
            }),
        ),
    ];

    let per_entry = |held: usize| (held as f64 - payload as f64) / n as f64;
    let baseline = per_entry(rows[0].1);
    println!(
        "memory: {n} entries, {KEY_LEN}-byte keys, {VALUE_LEN}-byte values, payload {payload} bytes"
    );
    println!(
        "| {:<40} | {:>14} | {:>18} | {:>16} |",
        "structure", "live bytes", "overhead B/entry", "vs std HashMap"
    );
    println!("|{:-<42}|{:->16}|{:->20}|{:->18}|", "", "", "", "");
    for (name, held) in &rows {
        let overhead = per_entry(*held);
        println!(
            "| {:<40} | {:>14} | {:>18.1} | {:>15.2}x |",
            name,
            held,
            overhead,
            overhead / baseline
        );
    }
    println!();
}

/// Keys of the many-origins map.
const MO_KEYS: usize = 1_000;
/// Writes made to it: write `w` goes to key `w % MO_KEYS`, so every key is
/// written twice and holds its second write.
const MO_WRITES: usize = 2_000;
/// Origins each write's origin is drawn from, uniformly.
const MO_ORIGINS: usize = 600;
/// One write in this many is a delete, in the variant with tombstones.
const MO_DELETE_EVERY: usize = 10;

/// The many-origins shape: a small map per replica, written by many origins.
fn many_origins() {
    let data = pairs(0..MO_KEYS);
    let mut rng = SplitMix::new(42);
    // Stamps increase with `w`, so they increase per origin as well, as
    // `put` requires.
    let writes: Vec<(usize, Stamp)> = (0..MO_WRITES)
        .map(|w| {
            let origin = 1 + rng.below(MO_ORIGINS) as u64;
            (w % MO_KEYS, stamp(w as u64, origin))
        })
        .collect();
    let build = |deletes: bool| {
        let mut map = LwwMap::new();
        for (w, &(k, s)) in writes.iter().enumerate() {
            let (key, value) = &data[k];
            if deletes && w % MO_DELETE_EVERY == MO_DELETE_EVERY - 1 {
                map.delete(key.clone(), s);
            } else {
                map.put(key.clone(), value.clone(), s);
            }
        }
        map
    };
    let vector = || {
        let mut vector = VersionVector::new();
        for &(_, s) in &writes {
            vector.advance(s.origin, s.hlc);
        }
        vector
    };
    let payload_of = |map: &LwwMap<String, String>| -> usize {
        map.entries()
            .map(|(k, e)| k.len() + e.value.as_ref().map_or(0, String::len))
            .sum()
    };
    let origins = vector().len();
    let (plain, with_deletes) = (build(false), build(true));
    let payloads = [payload_of(&plain), payload_of(&with_deletes)];
    let tombstones = with_deletes.tombstone_count();
    let origins_holding = |map: &LwwMap<String, String>| {
        let mut held: Vec<NodeId> = map.entries().map(|(_, e)| e.stamp.origin).collect();
        held.sort_unstable();
        held.dedup();
        held.len()
    };
    let holding = origins_holding(&plain);
    drop((plain, with_deletes));

    let rows: [(&str, usize, usize); 3] = [
        (
            "HashMap<String, String> (std), same keys",
            measure(|| {
                let mut map = StdHashMap::new();
                for (k, v) in &data {
                    map.insert(k.clone(), v.clone());
                }
                map
            }),
            payloads[0],
        ),
        (
            "LwwMap<String, String>",
            measure(|| build(false)),
            payloads[0],
        ),
        (
            "LwwMap<String, String>, 1 write in 10 a delete",
            measure(|| build(true)),
            payloads[1],
        ),
    ];
    let vector_bytes = measure(vector);

    println!(
        "memory, many origins: {MO_KEYS} keys, {MO_WRITES} writes by {origins} distinct origins \
         ({holding} of them hold an entry); {tombstones} tombstones in the variant with deletes"
    );
    println!(
        "| {:<48} | {:>10} | {:>14} | {:>16} |",
        "structure", "live bytes", "overhead bytes", "overhead B/entry"
    );
    println!("|{:-<50}|{:->12}|{:->16}|{:->18}|", "", "", "", "");
    for (name, held, payload) in rows {
        println!(
            "| {:<48} | {:>10} | {:>14} | {:>16.1} |",
            name,
            held,
            held - payload,
            (held - payload) as f64 / MO_KEYS as f64
        );
    }
    println!(
        "| {:<48} | {:>10} | {:>14} | {:>16} |",
        format!("VersionVector alone, {origins} origins"),
        vector_bytes,
        vector_bytes,
        format!("{:.1} B/origin", vector_bytes as f64 / origins as f64)
    );
    println!();
}
