//! `--revoked FILE`: the deny-list of certificate serials the node refuses
//! at every TLS handshake (QUIC both ways, HTTPS), read at the start and
//! again whenever the file changes, so that revoking needs no restart.
//!
//! The file is checked every [`RELOAD_EVERY`] (its modification time and
//! length). A file that cannot be read or holds a malformed line at the
//! start stops the node from starting; on a reload, the previous list stays
//! in force and the node warns, once per change of the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};
use transport_quic::{DenyList, DenyListError};

use crate::node::{LOG_TARGET, NodeError};

/// How often the node looks at the file for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What a change of the file looks like: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Reads the list at the start.
///
/// # Errors
/// [`NodeError::Revoked`]: the file cannot be read or has a malformed line.
pub(crate) fn load(path: &Path) -> Result<DenyList, NodeError> {
    let serials = DenyList::read_file(path).map_err(|source| NodeError::Revoked {
        path: path.to_owned(),
        source,
    })?;
    let list = DenyList::from_serials(serials);
    info!(target: LOG_TARGET, path = %path.display(), serials = list.len(), "revocation list loaded");
    Ok(list)
}

/// Re-reads `path` into `list` whenever it changes, until the runtime
/// stops.
pub(crate) async fn follow(path: PathBuf, list: DenyList) {
    let mut seen = stamp(&path);
    let mut ticks = tokio::time::interval(RELOAD_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match DenyList::read_file(&path) {
            Ok(serials) => {
                list.replace(serials);
                info!(target: LOG_TARGET, path = %path.display(), serials = list.len(),
                    "revocation list reloaded");
            }
            Err(err) => warn_kept(&path, &err, list.len()),
        }
    }
}

fn warn_kept(path: &Path, err: &DenyListError, kept: usize) {
    warn!(target: LOG_TARGET, path = %path.display(), error = %err, serials = kept,
        "revocation list not reloaded: the previous list stays in force");
}
