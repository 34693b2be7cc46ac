//! The audit log: one line per write a client made, at `info` under the
//! target [`AUDIT_TARGET`], so that operators can route or filter it apart
//! from the node's other lines (`RUST_LOG=gossip_kv::audit=info`). Writes
//! refused for the client's role are logged there too, at `warn`.
//!
//! Who wrote comes from the client's certificate ([`Caller::Client`]); a
//! plain-HTTP request on loopback has no certificate and is logged as
//! client `-` ([`Caller::Loopback`]).

use lww_crdt::Stamp;
use tracing::{info, warn};
use transport_quic::certs::ClientIdentity;

/// The tracing target of the audit lines.
pub const AUDIT_TARGET: &str = "gossip_kv::audit";

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A client its certificate names, over `via` (`quic` or `https`).
    Client {
        /// The client's name and role.
        client: ClientIdentity,
        /// The protocol.
        via: &'static str,
    },
    /// Plain HTTP on loopback: no certificate, so no name and no role
    /// check; whoever can reach the loopback address may write.
    Loopback,
}

impl Caller {
    /// Whether the caller may write.
    pub(crate) fn may_write(&self) -> bool {
        match self {
            Caller::Client { client, .. } => client.role().may_write(),
            Caller::Loopback => true,
        }
    }

    fn name(&self) -> &str {
        match self {
            Caller::Client { client, .. } => client.name(),
            Caller::Loopback => "-",
        }
    }

    fn role(&self) -> &'static str {
        match self {
            Caller::Client { client, .. } => client.role().as_str(),
            Caller::Loopback => "-",
        }
    }

    fn via(&self) -> &'static str {
        match self {
            Caller::Client { via, .. } => via,
            Caller::Loopback => "http",
        }
    }
}

/// A write of `op` (`put` or `delete`) to `key` the node took, with its
/// stamp.
pub(crate) fn write_taken(caller: &Caller, op: &'static str, key: &str, stamp: &Stamp) {
    info!(
        target: AUDIT_TARGET,
        client = caller.name(),
        role = caller.role(),
        via = caller.via(),
        op,
        key = ?key,
        hlc = %stamp.hlc,
        origin = stamp.origin.get(),
        "write"
    );
}

/// A write refused because the caller's role does not allow it.
pub(crate) fn write_forbidden(caller: &Caller, op: &'static str, key: &str) {
    warn!(
        target: AUDIT_TARGET,
        client = caller.name(),
        role = caller.role(),
        via = caller.via(),
        op,
        key = ?key,
        "write refused: the client's role does not allow writes"
    );
}
