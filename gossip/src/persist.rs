//! [`Persist`]: where a driven node keeps the durable copy of its map.

use crate::node::{Change, Node};

/// A durable copy of a driven node's map, kept by whoever drives it (see
/// [`Driver::persist_to`](crate::Driver::persist_to)).
///
/// The driver calls [`write`](Self::write) with the node locked, after
/// every client write and every step that changed the map, so writes
/// arrive in the order the changes happened; it should be quick (a queue
/// push or a buffered append), and each returns a ticket, numbered from one
/// in the order of the calls. The driver sends no frame until
/// [`written`](Self::written) covers the last ticket issued before the
/// frame was made: a peer never hears that this node holds what a crash of
/// the process could take from it. A client write is acknowledged only
/// after [`wait_acknowledged`](Self::wait_acknowledged) returns, outside
/// the lock, which is where an implementation that syncs to disk before
/// acknowledging waits, and where concurrent writers can share one sync.
pub trait Persist: Send + Sync {
    /// Writes `changes`, the node's changes since the last call, and the
    /// node's version vector after them (read from `node`). Returns a ticket
    /// for [`wait_acknowledged`](Self::wait_acknowledged).
    ///
    /// # Errors
    /// [`PersistError`] if the storage failed. The driver then stops: a
    /// node whose durable copy is behind must not go on gossiping.
    fn write(&self, node: &Node, changes: Vec<Change>) -> Result<u64, PersistError>;

    /// The last ticket whose changes (and every earlier ticket's) would
    /// survive the process being killed now.
    ///
    /// # Errors
    /// [`PersistError`] if the storage failed.
    fn written(&self) -> Result<u64, PersistError>;

    /// Waits until the write `ticket` is as durable as a client write must
    /// be before it is acknowledged.
    ///
    /// # Errors
    /// [`PersistError`] if the storage failed.
    fn wait_acknowledged(&self, ticket: u64) -> Result<(), PersistError>;
}

/// The storage under a [`Persist`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node's storage failed: {0}")]
pub struct PersistError(pub String);
