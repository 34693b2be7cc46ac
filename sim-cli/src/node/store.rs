//! The durable copy of a node's state in its data directory (`--data-dir`),
//! kept in fjall (docs/design.md, "Durable storage").
//!
//! Two keyspaces: `entries` maps each key to its entry (value or
//! tombstone, with its stamp), and `meta` holds the format version, the
//! version vector, the incarnations this member has lived, the members it
//! knew, when it last heard from a majority of them, and, once it left the
//! cluster or was refused as expired, that fact. Every
//! change the node makes is one atomic fjall batch, written to the
//! operating system before the node acknowledges it or tells a peer it
//! holds it; [`SyncMode`] says when it is also synced to the disk.
//!
//! The in-memory map keeps serving reads; this copy is read only when the
//! node starts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::Duration;

use gossip::{Change, Member, Node, Persist, PersistError, StoreMap};
use lww_crdt::{Entry, LwwMap, NodeId, VersionVector};
use tracing::{error, info};

use crate::node::LOG_TARGET;

/// The layout this build writes; a directory of another is refused.
const FORMAT: u32 = 1;

const META_FORMAT: &str = "format";
const META_VECTOR: &str = "vector";
const META_INCARNATIONS: &str = "incarnations";
const META_MEMBERS: &str = "members";
const META_LEFT: &str = "left";
/// The member that refused this member as expired.
const META_EXPIRED: &str = "expired";
/// When (ms since the Unix epoch, by the node's clock) the node last heard
/// from a majority of its members.
const META_IN_TOUCH: &str = "in-touch";
/// True from the start of a run until its clean stop.
const META_RUNNING: &str = "running";

/// When a write is synced to the disk (`--sync`). In every mode it is
/// written to the operating system before it is acknowledged, so the
/// process can be killed without losing it; the modes differ in what a
/// power loss or a kernel crash can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// A client write is acknowledged once it is synced (fsync); writers
    /// waiting together share one sync (group commit).
    Always,
    /// Synced every interval: a power loss can take what was acknowledged
    /// in the last interval.
    Interval(Duration),
    /// Never synced by the node: the operating system writes it back when
    /// it chooses (within about 30 s on Linux by default).
    Never,
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncMode::Always => f.write_str("always"),
            SyncMode::Interval(every) => write!(f, "interval ({} ms)", every.as_millis()),
            SyncMode::Never => f.write_str("never"),
        }
    }
}

/// Why a data directory could not be used. The node does not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process has the directory open.
    #[error(
        "{} is in use by another process (a node already runs on it); stop that node first, \
         or give this one another --data-dir",
        dir.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds something this build cannot vouch for.
    #[error(
        "{} is damaged: {what}. The node will not serve data it cannot vouch for: move the \
         directory away and start the node with an empty one; it then fetches the cluster's \
         state from its peers",
        dir.display()
    )]
    Damaged {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The member whose state this is left the cluster: the others may have
    /// collected deletes without it, so its values could come back.
    #[error(
        "{} holds the state of member {id} as it was when it left the cluster (incarnation \
         {incarnation}); the other members may since have collected deletes it never saw, \
         which its values would undo. Start it with an empty --data-dir: it then fetches the \
         cluster's state from its peers",
        dir.display()
    )]
    Left {
        /// The directory.
        dir: PathBuf,
        /// The member.
        id: NodeId,
        /// The incarnation it left in.
        incarnation: u32,
    },
    /// A member refused this one as expired: it was silent past the
    /// retention window, and the others may have collected deletes
    /// without it.
    #[error(
        "{} holds the state of a member that member {by} refused as expired (silent longer than \
         the retention window, --retention-ms); the other members may since have collected \
         deletes it never saw, which its values would undo. Move the directory away and start \
         the node with an empty --data-dir: it then fetches the cluster's state from its peers",
        dir.display()
    )]
    Expired {
        /// The directory.
        dir: PathBuf,
        /// The member that refused it.
        by: NodeId,
    },
    /// The storage engine failed.
    #[error("{}: the storage engine failed", dir.display())]
    Engine {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: fjall::Error,
    },
}

/// What a data directory held when it was opened.
#[derive(Debug, Default)]
pub struct Saved {
    /// The map, with its version vector.
    pub map: StoreMap,
    /// The incarnations lived so far, oldest first.
    pub incarnations: Vec<u32>,
    /// The members the node knew, itself excluded.
    pub members: Vec<Member>,
    /// When the node last heard from a majority of its members (ms since
    /// the Unix epoch, by its clock), if it ever did with this directory.
    pub in_touch_ms: Option<u64>,
    /// Whether the directory was just created.
    pub fresh: bool,
    /// The last run ended without a clean stop (killed, crashed, or the
    /// machine lost power): fjall recovered the journal up to its last
    /// complete batch, dropping a torn one after it if there was one.
    pub unclean: bool,
}

/// The open data directory: the node's [`Persist`].
///
/// [`write`](Persist::write) only queues the changes; a writer thread of
/// the store commits them to fjall in order, so that a node applying one
/// delta overlaps with the writing of the one before, and the driver holds
/// the frames of each step until [`written`](Persist::written) covers it.
/// A client waiting for its write commits what is queued itself.
pub struct Store {
    dir: PathBuf,
    db: fjall::Database,
    entries: fjall::Keyspace,
    meta: fjall::Keyspace,
    mode: SyncMode,
    sync: Mutex<SyncState>,
    /// Held while committing: batches go to fjall one committer at a time,
    /// in the order they were queued.
    committing: Mutex<()>,
    /// Wakes the writer thread.
    wakeup: Arc<Wakeup>,
    /// Writers and syncers wait here for progress.
    progress: Condvar,
    failed: AtomicBool,
}

/// Batches queued, written and synced, numbered from one.
#[derive(Debug, Default)]
struct SyncState {
    /// Changes waiting for the writer thread, with the vector after them.
    queue: std::collections::VecDeque<(u64, Vec<Change>, VersionVector)>,
    submitted: u64,
    written: u64,
    synced: u64,
    /// A thread is syncing now: the others wait for it.
    syncing: bool,
}

impl Store {
    /// Opens (or creates) the data directory `dir` for member `id`, locking
    /// it for this process, and reads what it holds.
    ///
    /// # Errors
    /// [`StoreError`]: the directory is in use, damaged, or belongs to a
    /// member that left.
    pub fn open(dir: &Path, id: NodeId, mode: SyncMode) -> Result<(Arc<Store>, Saved), StoreError> {
        let engine = |source| StoreError::Engine {
            dir: dir.to_path_buf(),
            source,
        };
        let damaged = |what: String| StoreError::Damaged {
            dir: dir.to_path_buf(),
            what,
        };
        let db = fjall::Database::builder(dir)
            // Reads are served from memory: the cache only speeds the scan
            // at start.
            .cache_size(4 << 20)
            // The `meta` keyspace is written with every batch but never
            // fills its memtable, and a journal goes only once every
            // keyspace has flushed what it holds: without this bound the
            // journal would keep everything, and a start would replay it
            // all (3.4 s for 1,000,000 entries, against 1.4-1.8 s with it).
            .max_journaling_size(64 << 20)
            .worker_threads(1)
            .open()
            .map_err(|err| match err {
                fjall::Error::Locked => StoreError::Locked {
                    dir: dir.to_path_buf(),
                },
                fjall::Error::Io(io) => engine(fjall::Error::Io(io)),
                other => damaged(format!("the storage engine cannot open it ({other:?})")),
            })?;
        let entries = db
            .keyspace("entries", || {
                fjall::KeyspaceCreateOptions::default()
                    .filter_policy(fjall::config::FilterPolicy::disabled())
            })
            .map_err(engine)?;
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let store = Store {
            dir: dir.to_path_buf(),
            db,
            entries,
            meta,
            mode,
            sync: Mutex::new(SyncState::default()),
            committing: Mutex::new(()),
            wakeup: Arc::new(Wakeup::default()),
            progress: Condvar::new(),
            failed: AtomicBool::new(false),
        };
        let format: Option<u32> = store.read_meta(META_FORMAT)?;
        let saved = match format {
            None if store.entries.is_empty().map_err(engine)? => {
                store.put_meta(&[(META_FORMAT, encode(&FORMAT))], true)?;
                Saved {
                    fresh: true,
                    ..Saved::default()
                }
            }
            None => return Err(damaged("entries without a format record".into())),
            Some(FORMAT) => store.load(id)?,
            Some(other) => {
                return Err(damaged(format!(
                    "format {other}, and this build reads format {FORMAT}"
                )));
            }
        };
        let unclean = store.read_meta::<bool>(META_RUNNING)? == Some(true);
        store.put_meta(&[(META_RUNNING, encode(&true))], true)?;
        let saved = Saved { unclean, ..saved };
        let store = Arc::new(store);
        spawn_writer(Arc::downgrade(&store), Arc::clone(&store.wakeup)).map_err(|source| {
            StoreError::Engine {
                dir: dir.to_path_buf(),
                source: fjall::Error::Io(source),
            }
        })?;
        if let SyncMode::Interval(every) = mode {
            spawn_syncer(Arc::downgrade(&store), every);
        }
        Ok((store, saved))
    }

    fn load(&self, id: NodeId) -> Result<Saved, StoreError> {
        if let Some(incarnation) = self.read_meta::<u32>(META_LEFT)? {
            return Err(StoreError::Left {
                dir: self.dir.clone(),
                id,
                incarnation,
            });
        }
        if let Some(by) = self.read_meta::<u64>(META_EXPIRED)? {
            return Err(StoreError::Expired {
                dir: self.dir.clone(),
                by: NodeId::new(by),
            });
        }
        let in_touch_ms: Option<u64> = self.read_meta(META_IN_TOUCH)?;
        let vector: VersionVector = self
            .read_meta(META_VECTOR)?
            .unwrap_or_else(VersionVector::new);
        let incarnations: Vec<u32> = self.read_meta(META_INCARNATIONS)?.unwrap_or_default();
        let members: Vec<(u64, String)> = self.read_meta(META_MEMBERS)?.unwrap_or_default();
        let mut entries = Vec::new();
        for guard in self.entries.iter() {
            let (key, value) = guard.into_inner().map_err(|err| self.damaged(err))?;
            let key = String::from_utf8(key.to_vec())
                .map_err(|_| self.damaged("a key that is not UTF-8"))?;
            let entry: Entry<String> = decode(&value)
                .ok_or_else(|| self.damaged(format!("the entry of key {key:?} is undecodable")))?;
            entries.push((key, entry));
        }
        let map = LwwMap::try_from_parts(entries, vector).map_err(|err| {
            self.damaged(format!(
                "its entries do not match its version vector ({err})"
            ))
        })?;
        Ok(Saved {
            map,
            incarnations,
            members: members
                .into_iter()
                .map(|(id, address)| Member {
                    id: NodeId::new(id),
                    address,
                })
                .collect(),
            in_touch_ms,
            fresh: false,
            unclean: false,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sync mode.
    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Records that this member now lives `incarnations`' last entry, and
    /// syncs it: no later start may reuse it.
    ///
    /// # Errors
    /// [`StoreError::Engine`] if it cannot be written.
    pub fn record_incarnations(&self, incarnations: &[u32]) -> Result<(), StoreError> {
        self.put_meta(&[(META_INCARNATIONS, encode(&incarnations))], true)
    }

    /// Records the members the node knows, `me` left out, for its next
    /// start.
    ///
    /// # Errors
    /// [`StoreError::Engine`] if they cannot be written.
    pub fn record_members(&self, members: &[Member], me: NodeId) -> Result<(), StoreError> {
        let members: Vec<(u64, &str)> = members
            .iter()
            .filter(|m| m.id != me)
            .map(|m| (m.id.get(), m.address.as_str()))
            .collect();
        self.put_meta(&[(META_MEMBERS, encode(&members))], false)
    }

    /// Records that this member left the cluster in `incarnation`, and
    /// syncs: the directory is refused from now on ([`StoreError::Left`]).
    ///
    /// # Errors
    /// [`StoreError::Engine`] if it cannot be written.
    pub fn record_left(&self, incarnation: u32) -> Result<(), StoreError> {
        self.drain()?;
        self.put_meta(
            &[
                (META_LEFT, encode(&incarnation)),
                (META_RUNNING, encode(&false)),
            ],
            true,
        )
    }

    /// Records when the node last heard from a majority of its members (ms
    /// since the Unix epoch), for the next start to judge how long it was
    /// out of touch. Not synced: a crash loses at most a later time, which
    /// only makes the next start stricter.
    ///
    /// # Errors
    /// [`StoreError::Engine`] if it cannot be written.
    pub fn record_in_touch(&self, at_ms: u64) -> Result<(), StoreError> {
        self.put_meta(&[(META_IN_TOUCH, encode(&at_ms))], false)
    }

    /// Records that member `by` refused this one as expired, and syncs: the
    /// directory is refused from now on ([`StoreError::Expired`]).
    ///
    /// # Errors
    /// [`StoreError::Engine`] if it cannot be written.
    pub fn record_expired(&self, by: NodeId) -> Result<(), StoreError> {
        self.put_meta(&[(META_EXPIRED, encode(&by.get()))], true)
    }

    /// Records a clean stop, syncing everything written before it: the
    /// last write of a run.
    ///
    /// # Errors
    /// [`StoreError::Engine`] if it cannot be written.
    pub fn close(&self) -> Result<(), StoreError> {
        self.drain()?;
        self.put_meta(&[(META_RUNNING, encode(&false))], true)
    }

    /// The bytes the directory takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// Waits until every change queued is written.
    fn drain(&self) -> Result<(), StoreError> {
        let submitted = self.lock().submitted;
        self.wait_written(submitted)
            .map_err(|_| StoreError::Engine {
                dir: self.dir.clone(),
                source: fjall::Error::Poisoned,
            })
    }

    /// Waits until `ticket` is written, writing what is queued itself
    /// rather than waiting for the writer thread to wake: a client write
    /// costs no hand-over, and concurrent ones are committed together.
    fn wait_written(&self, ticket: u64) -> Result<(), PersistError> {
        while self.lock().written < ticket {
            self.write_queued()?;
        }
        Ok(())
    }

    /// Commits everything queued, in order, one fjall batch per hand-over.
    fn write_queued(&self) -> Result<(), PersistError> {
        let _committing = gossip::lock(&self.committing);
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.failure());
        }
        let work: Vec<_> = self.lock().queue.drain(..).collect();
        for (ticket, changes, vector) in work {
            if let Err(err) = self.commit(changes, &vector) {
                self.failed.store(true, Ordering::Relaxed);
                error!(target: LOG_TARGET, dir = %self.dir.display(), error = %err,
                    "writing to the data directory failed; the node stops");
                self.progress.notify_all();
                return Err(self.failure());
            }
            self.lock().written = ticket;
        }
        self.progress.notify_all();
        Ok(())
    }

    fn failure(&self) -> PersistError {
        PersistError(format!(
            "an earlier write or sync to {} failed",
            self.dir.display()
        ))
    }

    /// Commits one queued hand-over as one fjall batch, written to the
    /// operating system.
    fn commit(&self, changes: Vec<Change>, vector: &VersionVector) -> Result<(), fjall::Error> {
        let mut batch = self.db.batch();
        let mut buffer = Vec::new();
        for change in changes {
            match change {
                Change::Wrote { key, entry, .. } => {
                    buffer.clear();
                    encode_into(&entry, &mut buffer);
                    batch.insert(&self.entries, key.as_bytes(), buffer.as_slice());
                }
                Change::Collected { key } => batch.remove(&self.entries, key.as_bytes()),
            }
        }
        batch.insert(&self.meta, META_VECTOR, encode(vector));
        batch.commit()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.meta.get(name).map_err(|err| self.damaged(err))? else {
            return Ok(None);
        };
        decode(&bytes)
            .map(Some)
            .ok_or_else(|| self.damaged(format!("its {name} record is undecodable")))
    }

    fn put_meta(&self, records: &[(&str, Vec<u8>)], sync: bool) -> Result<(), StoreError> {
        let engine = |source| StoreError::Engine {
            dir: self.dir.clone(),
            source,
        };
        let mut batch = self.db.batch();
        for (name, bytes) in records {
            batch.insert(&self.meta, *name, bytes.as_slice());
        }
        batch.commit().map_err(engine)?;
        if sync {
            self.db
                .persist(fjall::PersistMode::SyncAll)
                .map_err(engine)?;
        }
        Ok(())
    }

    fn damaged(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Damaged {
            dir: self.dir.clone(),
            what: what.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        gossip::lock(&self.sync)
    }

    /// Syncs until batch `ticket` is on disk, sharing each sync with every
    /// writer waiting meanwhile: one thread syncs whatever has been written
    /// when it starts, the others wait for it, and the next sync covers
    /// whoever came during this one.
    fn sync_to(&self, ticket: u64) -> Result<(), PersistError> {
        let mut state = self.lock();
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err(self.failure());
            }
            if state.syncing {
                state = self
                    .progress
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            let target = state.written;
            drop(state);
            let result = self.db.persist(fjall::PersistMode::SyncData);
            state = self.lock();
            state.syncing = false;
            match &result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(err) => {
                    self.failed.store(true, Ordering::Relaxed);
                    error!(target: LOG_TARGET, dir = %self.dir.display(), error = %err,
                        "syncing the data directory failed; the node stops");
                }
            }
            self.progress.notify_all();
            result.map_err(|err| PersistError(err.to_string()))?;
        }
    }
}

impl Persist for Store {
    fn write(&self, node: &Node, changes: Vec<Change>) -> Result<u64, PersistError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.failure());
        }
        let mut state = self.lock();
        state.submitted += 1;
        let ticket = state.submitted;
        state
            .queue
            .push_back((ticket, changes, node.version_vector().clone()));
        drop(state);
        self.wakeup.notify(false);
        Ok(ticket)
    }

    fn written(&self) -> Result<u64, PersistError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.failure());
        }
        Ok(self.lock().written)
    }

    fn wait_acknowledged(&self, ticket: u64) -> Result<(), PersistError> {
        self.wait_written(ticket)?;
        match self.mode {
            SyncMode::Always => self.sync_to(ticket),
            SyncMode::Interval(_) | SyncMode::Never => Ok(()),
        }
    }
}

/// The writer thread: commits what [`Store::write`] queued, in order,
/// until the store is dropped.
fn spawn_writer(store: Weak<Store>, wakeup: Arc<Wakeup>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("store-write".into())
        .spawn(move || {
            // Holding the store only while writing: it is dropped (and its
            // directory unlocked) as soon as its node lets go of it.
            while wakeup.wait() {
                let Some(store) = store.upgrade() else { return };
                if store.write_queued().is_err() {
                    return;
                }
            }
        })
        .map(drop)
}

/// Wakes the writer thread: changes are queued, or the store is gone.
#[derive(Debug, Default)]
struct Wakeup {
    /// (changes queued, store dropped)
    state: Mutex<(bool, bool)>,
    ready: Condvar,
}

impl Wakeup {
    fn notify(&self, dropped: bool) {
        let mut state = gossip::lock(&self.state);
        state.0 = true;
        state.1 |= dropped;
        self.ready.notify_one();
    }

    /// Waits for queued changes; false once the store is gone.
    fn wait(&self) -> bool {
        let mut state = gossip::lock(&self.state);
        while !state.0 {
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.0 = false;
        !state.1
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.wakeup.notify(true);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Syncs `store` every `every` while it is open (`--sync interval`).
fn spawn_syncer(store: Weak<Store>, every: Duration) {
    let spawned = thread::Builder::new()
        .name("store-sync".into())
        .spawn(move || {
            loop {
                thread::sleep(every);
                let Some(store) = store.upgrade() else { return };
                let written = store.lock().written;
                if store.sync_to(written).is_err() {
                    return;
                }
            }
        });
    if let Err(err) = spawned {
        error!(target: LOG_TARGET, error = %err, "cannot start the sync thread; syncing on every write instead");
    }
}

fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_into(value, &mut bytes);
    bytes
}

/// Appends `value`'s encoding to `bytes`: one buffer serves a whole batch.
fn encode_into<T: serde::Serialize + ?Sized>(value: &T, bytes: &mut Vec<u8>) {
    let _ = bincode::serde::encode_into_std_write(value, bytes, bincode::config::standard());
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, read)) if read == bytes.len() => Some(value),
        _ => None,
    }
}

/// Logs what a start found in the data directory.
pub(crate) fn log_opened(store: &Store, saved: &Saved) {
    if saved.unclean {
        tracing::warn!(target: LOG_TARGET, dir = %store.dir().display(),
            "the last run did not stop cleanly (killed, crashed or lost power): recovered to the \
             last complete batch in the journal");
    }
    info!(target: LOG_TARGET,
        dir = %store.dir().display(),
        sync = %store.mode(),
        fresh = saved.fresh,
        keys = saved.map.len(),
        tombstones = saved.map.tombstone_count(),
        incarnations = saved.incarnations.len(),
        members = saved.members.len(),
        "data directory opened");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use gossip::Config;

    /// A directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("gossip-kv-store-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_reopened_directory_holds_what_was_written_less_what_was_collected() {
        let dir = Scratch::new("collected");
        let id = NodeId::new(7);
        let (store, saved) = Store::open(&dir.0, id, SyncMode::Always).unwrap();
        assert!(saved.fresh);
        let mut node = Node::new(Config::builder(id).build().unwrap(), []);
        node.record_changes();
        node.put("kept".into(), "v".into(), 1_000).unwrap();
        node.put("gone".into(), "v".into(), 1_001).unwrap();
        node.delete("gone".into(), 1_002).unwrap();
        let changes = node.take_changes();
        let ticket = store.write(&node, changes).unwrap();
        store.wait_acknowledged(ticket).unwrap();
        // As tombstone collection reports a dropped tombstone.
        let collected = vec![Change::Collected { key: "gone".into() }];
        store.write(&node, collected).unwrap();
        store.close().unwrap();
        drop(store);

        let (store, saved) = Store::open(&dir.0, id, SyncMode::Always).unwrap();
        assert!(!saved.fresh && !saved.unclean);
        assert_eq!(saved.map.get("kept").map(String::as_str), Some("v"));
        assert!(
            saved.map.get_entry("gone").is_none(),
            "the tombstone is still on disk"
        );
        assert_eq!(saved.map.version_vector(), node.version_vector());
        // A second open while this one holds the directory is refused.
        assert!(matches!(
            Store::open(&dir.0, id, SyncMode::Always),
            Err(StoreError::Locked { .. })
        ));
        store.record_left(3).unwrap();
        drop(store);
        assert!(matches!(
            Store::open(&dir.0, id, SyncMode::Always),
            Err(StoreError::Left { incarnation: 3, .. })
        ));
    }
}
