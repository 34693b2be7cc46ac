//! Memory per entry: `LwwMap` against plain hash maps holding the same pairs.
//!
//! A counting global allocator tracks live heap bytes (as requested from the
//! allocator: no allocator headers or size-class rounding). Each map is built
//! from clones of the same 1,000,000 pairs of 16-byte keys and 100-byte
//! values, each string allocated at exactly its length; the payload is the
//! sum of key and value lengths, and the overhead per entry is the live bytes
//! the map holds minus the payload, divided by the number of entries.
//!
//! Run with `cargo bench -p lww-crdt --bench memory`; it prints a table.

// A global allocator needs `unsafe impl GlobalAlloc`. The workspace denies
// unsafe code and every library forbids it in its lib.rs; this bench binary is
// the one place that allows it, for the counting allocator below only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap as StdHashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashMap as FoldHashMap;
use lww_crdt::{HybridClock, LwwMap, ManualClock, NodeId, Replica};

mod common;
use common::{KEY_LEN, VALUE_LEN, pairs, stamp};

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
                    replica.put(k.clone(), v.clone());
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
