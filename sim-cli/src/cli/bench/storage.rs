//! `sim-cli bench storage`: the two embedded storage engines a durable node
//! could keep its map in, fjall (an LSM tree with a journal) and redb (a
//! copy-on-write B-tree), on the node's own workload, in one run:
//!
//! - **acknowledged writes**: `--clients` threads each put entries one at a
//!   time and wait until theirs is on disk (fsync). One committer thread
//!   takes every write waiting, commits them as one batch, syncs once and
//!   acknowledges them all (group commit), so the clients are not
//!   serialized behind one fsync each. Throughput and latency.
//! - **applying a delta**: `--keys` entries written in batches of
//!   `--batch`, synced once at the end, as a node persists a large delta
//!   from a peer.
//! - **reopening**: the engine opened again and every entry read back and
//!   decoded, as a restarted node rebuilds its in-memory map.
//! - the bytes on disk once the entries are in.
//!
//! Entries are stored as the node would: the key as the engine's key; the
//! stamp (hybrid time and origin, 16 bytes) and the value or a tombstone as
//! the engine's value.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use sim::Summary;

use crate::cli::bench::median_of;

/// The engines compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EngineKind {
    /// The baseline: a `BTreeMap` in memory, behind the same committer;
    /// "syncing" does nothing and "reopening" reads the same map back.
    Memory,
    /// fjall 3: an LSM tree with a write-ahead journal.
    Fjall,
    /// redb 5: a copy-on-write B-tree in one file.
    Redb,
}

/// `sim-cli bench storage`.
#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// The engines to measure, in this order.
    #[arg(long, value_delimiter = ',', default_values = ["memory", "fjall", "redb"])]
    pub(crate) engines: Vec<EngineKind>,
    /// Entries of the delta, then reopened.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) keys: u64,
    /// Entries per batch when applying the delta.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) batch: u64,
    /// Concurrent writing clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) clients: u64,
    /// Acknowledged writes per client.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) puts_per_client: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub(crate) value_bytes: u64,
    /// Where the engines' files go (a fresh directory under it per engine,
    /// removed afterwards). Default: the system's temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What one engine measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EngineReport {
    engine: EngineKind,
    /// Acknowledged (synced) writes per second, all clients together.
    acked_puts_per_sec: f64,
    /// Latency of one acknowledged write, in ms.
    put_p50_ms: f64,
    put_p99_ms: f64,
    /// Writes per commit, on average: how much group commit gathered.
    puts_per_commit: f64,
    /// Seconds to write the delta, synced at the end.
    delta_secs: f64,
    delta_entries_per_sec: f64,
    /// Seconds to open the engine again and read every entry back.
    reopen_secs: f64,
    /// Bytes on disk after the delta, per entry.
    disk_bytes_per_entry: f64,
}

/// Runs `sim-cli bench storage`.
///
/// # Errors
/// An engine's I/O or setup failure.
pub(crate) fn run(args: &StorageArgs) -> anyhow::Result<ExitCode> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut reports = Vec::new();
    for &kind in &args.engines {
        let dir = base.join(format!(
            "gossip-kv-storage-bench-{}-{kind:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let report = measure(kind, &dir, args);
        let _ = std::fs::remove_dir_all(&dir);
        reports.push(report?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_table(args, &reports);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(args: &StorageArgs, reports: &[EngineReport]) {
    println!(
        "{} clients x {} acknowledged puts; a delta of {} entries in batches of {}; {}-byte values",
        args.clients, args.puts_per_client, args.keys, args.batch, args.value_bytes
    );
    println!(
        "{:<7} {:>14} {:>9} {:>9} {:>12} {:>10} {:>14} {:>10} {:>11}",
        "engine",
        "acked puts/s",
        "p50 ms",
        "p99 ms",
        "puts/commit",
        "delta s",
        "delta entr./s",
        "reopen s",
        "disk B/ent."
    );
    for r in reports {
        println!(
            "{:<7} {:>14.0} {:>9.2} {:>9.2} {:>12.1} {:>10.2} {:>14.0} {:>10.2} {:>11.1}",
            format!("{:?}", r.engine).to_lowercase(),
            r.acked_puts_per_sec,
            r.put_p50_ms,
            r.put_p99_ms,
            r.puts_per_commit,
            r.delta_secs,
            r.delta_entries_per_sec,
            r.reopen_secs,
            r.disk_bytes_per_entry
        );
    }
}

fn measure(kind: EngineKind, dir: &Path, args: &StorageArgs) -> anyhow::Result<EngineReport> {
    let value = "v".repeat(usize::try_from(args.value_bytes)?);
    // Acknowledged writes, into an engine of their own.
    let puts_dir = dir.join("puts");
    let (acked_puts_per_sec, latencies, puts_per_commit) = {
        let engine = open(kind, &puts_dir)?;
        acknowledged_puts(engine, args.clients, args.puts_per_client, &value)?
    };
    // The delta, then the reopen.
    let delta_dir = dir.join("delta");
    let mut engine = open(kind, &delta_dir)?;
    let delta_secs = {
        let started = Instant::now();
        let mut batch = Vec::with_capacity(usize::try_from(args.batch)?);
        for i in 0..args.keys {
            batch.push((key(i), encode(i, &value)));
            if batch.len() as u64 == args.batch || i + 1 == args.keys {
                engine.write(&batch, false)?;
                batch.clear();
            }
        }
        engine.sync()?;
        started.elapsed().as_secs_f64()
    };
    let started = Instant::now();
    let reopened = if kind == EngineKind::Memory {
        engine
    } else {
        drop(engine);
        open(kind, &delta_dir)?
    };
    let read = reopened.scan()?;
    let reopen_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        read == args.keys,
        "{kind:?} read back {read} entries of {}",
        args.keys
    );
    let disk = disk_bytes(&delta_dir)?;
    Ok(EngineReport {
        engine: kind,
        acked_puts_per_sec,
        put_p50_ms: median_of(&latencies),
        put_p99_ms: Summary::of(latencies).p99,
        puts_per_commit,
        delta_secs,
        delta_entries_per_sec: args.keys as f64 / delta_secs,
        reopen_secs,
        disk_bytes_per_entry: disk as f64 / args.keys as f64,
    })
}

/// One write waiting for the committer, and where to say it is durable.
struct Pending {
    key: Vec<u8>,
    value: Vec<u8>,
    done: mpsc::SyncSender<()>,
}

/// `clients` threads putting `per_client` entries each, each waiting until
/// its entry is synced; one committer gathering whatever waits into one
/// commit and one sync. Returns the throughput, every latency in ms, and
/// the writes per commit.
fn acknowledged_puts(
    mut engine: Box<dyn Engine>,
    clients: u64,
    per_client: u64,
    value: &str,
) -> anyhow::Result<(f64, Vec<f64>, f64)> {
    let (tx, rx) = mpsc::channel::<Pending>();
    let committer = thread::spawn(move || -> anyhow::Result<u64> {
        let mut commits = 0;
        while let Ok(first) = rx.recv() {
            let mut waiting = vec![first];
            waiting.extend(rx.try_iter());
            let batch: Vec<(Vec<u8>, Vec<u8>)> = waiting
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            engine.write(&batch, true)?;
            commits += 1;
            for pending in waiting {
                let _ = pending.done.send(());
            }
        }
        Ok(commits)
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let tx = tx.clone();
            let value = value.to_owned();
            thread::spawn(move || {
                let mut latencies = Vec::with_capacity(usize::try_from(per_client).unwrap_or(0));
                for n in 0..per_client {
                    let i = client * per_client + n;
                    let (done, acked) = mpsc::sync_channel(1);
                    let put = Instant::now();
                    let pending = Pending {
                        key: key(i),
                        value: encode(i, &value),
                        done,
                    };
                    if tx.send(pending).is_err() || acked.recv().is_err() {
                        break;
                    }
                    latencies.push(put.elapsed().as_secs_f64() * 1e3);
                }
                latencies
            })
        })
        .collect();
    drop(tx);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))?,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let commits = committer
        .join()
        .map_err(|_| anyhow::anyhow!("the committer panicked"))??;
    anyhow::ensure!(
        latencies.len() as u64 == clients * per_client,
        "the committer failed"
    );
    let puts = latencies.len() as f64;
    Ok((puts / elapsed, latencies, puts / commits.max(1) as f64))
}

/// A 16-byte key, as in the other benchmarks.
fn key(i: u64) -> Vec<u8> {
    format!("key-{i:012}").into_bytes()
}

/// An entry as a node stores it: its stamp, then a tag and the value.
fn encode(i: u64, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + value.len());
    out.extend_from_slice(&(i << 16).to_be_bytes());
    out.extend_from_slice(&7u64.to_be_bytes());
    out.push(1);
    out.extend_from_slice(value.as_bytes());
    out
}

/// Decodes what [`encode`] wrote; `None` if it is damaged.
fn decode(bytes: &[u8]) -> Option<(u64, u64, Option<&[u8]>)> {
    let hlc = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let origin = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    match *bytes.get(16)? {
        0 => Some((hlc, origin, None)),
        1 => Some((hlc, origin, Some(&bytes[17..]))),
        _ => None,
    }
}

fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// What the benchmark needs of an engine.
trait Engine: Send {
    /// Writes `entries` atomically; synced to disk when `durable`.
    fn write(&mut self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> anyhow::Result<()>;
    /// Syncs everything written so far.
    fn sync(&mut self) -> anyhow::Result<()>;
    /// Reads every entry back and decodes it; returns how many there are.
    fn scan(&self) -> anyhow::Result<u64>;
}

fn open(kind: EngineKind, dir: &Path) -> anyhow::Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        EngineKind::Memory => Box::new(MemoryEngine::default()),
        EngineKind::Fjall => Box::new(FjallEngine::open(dir)?),
        EngineKind::Redb => Box::new(RedbEngine::open(dir)?),
    })
}

#[derive(Default)]
struct MemoryEngine {
    entries: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Engine for MemoryEngine {
    fn write(&mut self, entries: &[(Vec<u8>, Vec<u8>)], _durable: bool) -> anyhow::Result<()> {
        for (key, value) in entries {
            self.entries.insert(key.clone(), value.clone());
        }
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn scan(&self) -> anyhow::Result<u64> {
        let mut count = 0;
        for value in self.entries.values() {
            decode(value).context("a damaged entry")?;
            count += 1;
        }
        Ok(count)
    }
}

struct FjallEngine {
    db: fjall::Database,
    entries: fjall::Keyspace,
}

impl FjallEngine {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = fjall::Database::builder(dir).open()?;
        let entries = db.keyspace("entries", fjall::KeyspaceCreateOptions::default)?;
        Ok(Self { db, entries })
    }
}

impl Engine for FjallEngine {
    fn write(&mut self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> anyhow::Result<()> {
        let mut batch = self.db.batch();
        for (key, value) in entries {
            batch.insert(&self.entries, key.as_slice(), value.as_slice());
        }
        batch.commit()?;
        if durable {
            self.db.persist(fjall::PersistMode::SyncAll)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    fn scan(&self) -> anyhow::Result<u64> {
        let mut count = 0;
        for guard in self.entries.iter() {
            let (_, value) = guard.into_inner()?;
            decode(&value).context("a damaged entry")?;
            count += 1;
        }
        Ok(count)
    }
}

const REDB_ENTRIES: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("entries");

struct RedbEngine {
    db: redb::Database,
}

impl RedbEngine {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = redb::Database::create(dir.join("store.redb"))?;
        Ok(Self { db })
    }
}

impl Engine for RedbEngine {
    fn write(&mut self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> anyhow::Result<()> {
        let mut txn = self.db.begin_write()?;
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(REDB_ENTRIES)?;
            for (key, value) in entries {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        // An empty transaction committed durably makes every earlier one
        // durable.
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.open_table(REDB_ENTRIES)?;
        txn.commit()?;
        Ok(())
    }

    fn scan(&self) -> anyhow::Result<u64> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_ENTRIES)?;
        let mut count = 0;
        for item in redb::ReadableTable::iter(&table)? {
            let (_, value) = item?;
            decode(value.value()).context("a damaged entry")?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_as_encoded() {
        let bytes = encode(5, "abc");
        assert_eq!(decode(&bytes), Some((5 << 16, 7, Some(&b"abc"[..]))));
        assert_eq!(decode(&bytes[..10]), None);
    }

    /// Both engines, on a small workload: every acknowledged write and every
    /// delta entry is read back after reopening.
    #[test]
    fn both_engines_read_back_what_they_took() {
        let dir = std::env::temp_dir().join(format!("gkv-storage-test-{}", std::process::id()));
        let args = StorageArgs {
            engines: vec![EngineKind::Fjall, EngineKind::Redb],
            keys: 2_000,
            batch: 300,
            clients: 3,
            puts_per_client: 20,
            value_bytes: 10,
            dir: Some(dir.clone()),
            json: true,
        };
        for &kind in &args.engines {
            let engine_dir = dir.join(format!("{kind:?}"));
            let report = measure(kind, &engine_dir, &args).unwrap();
            assert!(report.disk_bytes_per_entry > 0.0);
            let puts = open(kind, &engine_dir.join("puts"))
                .unwrap()
                .scan()
                .unwrap();
            assert_eq!(puts, 60, "{kind:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
