//! What the cluster commands print: certificates written, and what nodes
//! answer (writes, entries, members, status, convergence).

use std::fmt::Write as _;

use sim::client::proto::{MemberStatus, Status};

use crate::cli::certs::{CertsReport, Shown};
use crate::cli::converged::ConvergedReport;
use crate::cli::output::{bytes, json};

/// What `certs` wrote.
pub(crate) fn certs_report(report: &CertsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} in {}: {} node certificate(s) and {} client certificate(s){}, valid {} days",
        if report.new_ca {
            "new cluster CA"
        } else {
            "existing cluster CA"
        },
        report.dir.display(),
        report.nodes.len(),
        report.clients.len(),
        if report.clients.is_empty() {
            String::new()
        } else {
            let clients: Vec<String> = report
                .clients
                .iter()
                .map(|c| format!("{} ({})", c.name, c.role))
                .collect();
            format!(" [{}]", clients.join(", "))
        },
        report.valid_days
    );
    for file in &report.files {
        let _ = writeln!(
            out,
            "  {:<32} {}{}",
            file.path.display().to_string(),
            file.what,
            if file.secret { " [mode 0600]" } else { "" }
        );
    }
    out
}

/// What `certs --show` found in `path`: each certificate's serial (what
/// `node --revoked` takes), identity, names and validity.
pub(crate) fn shown_certs(path: &std::path::Path, shown: &[Shown]) -> String {
    let mut out = String::new();
    for (i, cert) in shown.iter().enumerate() {
        if shown.len() > 1 {
            let _ = writeln!(
                out,
                "{} (certificate {} of {})",
                path.display(),
                i + 1,
                shown.len()
            );
        } else {
            let _ = writeln!(out, "{}", path.display());
        }
        let left = if cert.days_left < 0 {
            "EXPIRED".to_owned()
        } else {
            format!("{} days left", cert.days_left)
        };
        let rows = [
            ("serial", cert.serial.clone()),
            ("identity", cert.identity.clone()),
            ("subject", cert.subject.clone()),
            ("issuer", cert.issuer.clone()),
            ("names", cert.names.join(", ")),
            ("not before", cert.not_before_text.clone()),
            ("not after", format!("{} ({left})", cert.not_after_text)),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<11} {value}");
        }
    }
    out
}

/// A stamp as JSON: the packed hlc, its parts, and the origin split into
/// member and incarnation.
pub(crate) fn stamp_json(stamp: &lww_crdt::Stamp) -> serde_json::Value {
    serde_json::json!({
        "hlc": stamp.hlc.as_u64(),
        "physical_ms": stamp.hlc.physical_ms(),
        "logical": stamp.hlc.logical(),
        "origin": stamp.origin.get(),
        "member": gossip::origin_member(stamp.origin).get(),
        "incarnation": stamp.origin.get() >> 32,
    })
}

/// A stamp for people: `hlc 1717000000123.0 by member 1 (incarnation 142000000)`.
pub(crate) fn stamp_text(stamp: &lww_crdt::Stamp) -> String {
    format!(
        "hlc {} by member {} (incarnation {})",
        stamp.hlc,
        gossip::origin_member(stamp.origin),
        stamp.origin.get() >> 32
    )
}

/// The answer to `put` or `delete`.
pub(crate) fn written(op: &str, key: &str, stamp: &lww_crdt::Stamp, json: bool) -> String {
    if json {
        return self::json(&serde_json::json!({
            "op": op,
            "key": key,
            "stamp": stamp_json(stamp),
        }));
    }
    format!("{op} {key:?}: {}\n", stamp_text(stamp))
}

/// The answer to `get`.
pub(crate) fn entry(key: &str, entry: Option<&lww_crdt::Entry<String>>, json: bool) -> String {
    if json {
        return self::json(&serde_json::json!({
            "key": key,
            "found": entry.is_some_and(|e| e.value.is_some()),
            "value": entry.and_then(|e| e.value.clone()),
            "deleted": entry.is_some_and(lww_crdt::Entry::is_tombstone),
            "stamp": entry.map(|e| stamp_json(&e.stamp)),
        }));
    }
    match entry {
        Some(lww_crdt::Entry {
            stamp,
            value: Some(value),
        }) => format!("{}\nstamp  {}\n", escape_controls(value), stamp_text(stamp)),
        Some(lww_crdt::Entry { stamp, value: None }) => {
            format!("absent: {key:?} was deleted, {}\n", stamp_text(stamp))
        }
        None => format!("absent: {key:?} was never written (as far as this node knows)\n"),
    }
}

/// A page of `keys`: one key a line, or `key = value` with `values`,
/// control characters escaped.
pub(crate) fn keys(keys: &[(String, String)], values: bool) -> String {
    keys.iter()
        .map(|(key, value)| {
            if values {
                format!("{} = {}\n", escape_controls(key), escape_controls(value))
            } else {
                format!("{}\n", escape_controls(key))
            }
        })
        .collect()
}

/// Every key `keys` listed, as one JSON document.
pub(crate) fn keys_json(keys: &[(String, String)]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(key, value)| serde_json::json!({ "key": key, "value": value }))
        .collect();
    self::json(&serde_json::json!({ "keys": keys }))
}

/// One line of `watch`: text, or a compact JSON object.
pub(crate) fn watch_event(event: &sim::client::WatchEvent, json: bool) -> String {
    use sim::client::WatchEvent;
    match event {
        WatchEvent::Changed(changed) => {
            let entry = &changed.entry;
            let from = changed
                .from
                .map_or_else(|| "local".to_owned(), |peer| format!("node {peer}"));
            if json {
                let line = serde_json::json!({
                    "op": if entry.value.is_some() { "put" } else { "delete" },
                    "key": changed.key,
                    "value": entry.value,
                    "stamp": stamp_json(&entry.stamp),
                    "from": changed.from.map(|peer| peer.get()),
                });
                return format!("{line}\n");
            }
            match &entry.value {
                Some(value) => format!(
                    "put {} = {}  ({}, from {from})\n",
                    escape_controls(&changed.key),
                    escape_controls(value),
                    stamp_text(&entry.stamp)
                ),
                None => format!(
                    "delete {}  ({}, from {from})\n",
                    escape_controls(&changed.key),
                    stamp_text(&entry.stamp)
                ),
            }
        }
        WatchEvent::Missed { batches } => {
            if json {
                return format!(
                    "{}\n",
                    serde_json::json!({ "op": "missed", "batches": batches })
                );
            }
            format!("missed {batches} batches of changes: list the keys again to catch up\n")
        }
    }
}

/// `text` with control characters (escape sequences among them) written as
/// escapes, so that a value cannot move the cursor or recolour a terminal;
/// `--json` and `get --raw` keep the bytes.
pub(crate) fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn liveness_text(liveness: Option<gossip::Liveness>) -> &'static str {
    match liveness {
        None => "self",
        Some(gossip::Liveness::Alive) => "alive",
        Some(gossip::Liveness::Suspect) => "suspect",
        Some(gossip::Liveness::Down) => "down",
        Some(gossip::Liveness::Left) => "left",
        Some(gossip::Liveness::Expired) => "expired",
    }
}

/// Members as JSON values: one object each.
fn members_json_values(members: &[MemberStatus]) -> Vec<serde_json::Value> {
    members
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id.get(),
                "address": m.address,
                "liveness": liveness_text(m.liveness),
                "incarnation": m.incarnation,
                "failures": m.failures,
                "last_heard_ms_ago": m.last_heard_ms_ago,
                "clock_offset_ms": m.clock_offset_ms,
            })
        })
        .collect()
}

/// The member table, its header line starting with `first` and each row
/// with `rest`.
fn members_table(members: &[MemberStatus], first: &str, rest: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{first}{:>6}  {:<24} {:<8} {:>11} {:>8} {:>12} {:>12}",
        "id", "address", "state", "incarnation", "failures", "last heard", "clock offset"
    );
    for m in members {
        let _ = writeln!(
            out,
            "{rest}{:>6}  {:<24} {:<8} {:>11} {:>8} {:>12} {:>12}",
            m.id.to_string(),
            if m.address.is_empty() {
                "-"
            } else {
                &m.address
            },
            liveness_text(m.liveness),
            m.incarnation
                .map_or_else(|| "-".to_owned(), |i| i.to_string()),
            m.failures,
            m.last_heard_ms_ago
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms ago")),
            m.clock_offset_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:+} ms"))
        );
    }
    out
}

/// `members`: one line per member, this node first, or a JSON array.
pub(crate) fn members(status: &Status, json_out: bool) -> String {
    if json_out {
        json(&members_json_values(&status.members))
    } else {
        members_table(&status.members, "", "")
    }
}

/// `status` as JSON.
pub(crate) fn status_json(status: &Status) -> String {
    let members = members_json_values(&status.members);
    let vector: Vec<serde_json::Value> = status
        .vector
        .iter()
        .map(|o| {
            serde_json::json!({
                "origin": o.origin.get(),
                "member": gossip::origin_member(o.origin).get(),
                "incarnation": o.origin.get() >> 32,
                "hlc": o.hlc.as_u64(),
                "hlc_text": o.hlc.to_string(),
            })
        })
        .collect();
    json(&serde_json::json!({
        "id": status.id.get(),
        "incarnation": status.incarnation,
        "joined": status.joined,
        "clock": {
            "peers_measured": status.clock.peers_measured,
            "peers_beyond": status.clock.peers_beyond,
            "median_offset_ms": status.clock.median_offset_ms,
            "out_of_range": status.clock.out_of_range,
            "max_offset_ms": status.max_clock_offset_ms,
        },
        "listen": status.listen,
        "uptime_ms": status.uptime_ms,
        "interval_ms": status.interval_ms,
        "members": members,
        "keys": status.keys,
        "tombstones": status.tombstones,
        "vector": {
            "origins": vector,
            "max_hlc": status.max_hlc.as_u64(),
            "max_hlc_text": status.max_hlc.to_string(),
            "hash": format!("{:016x}", status.vector_hash),
        },
        "content_hash": format!("{:016x}", status.content_hash),
        "metrics": status.metrics,
        "transport": status.transport,
        "storage": {
            "data_dir": status.storage.data_dir,
            "sync": status.storage.sync,
            "disk_bytes": status.storage.disk_bytes,
            "in_memory_only": status.storage.data_dir.is_none(),
        },
        "security": {
            "certificate_serial": status.security.certificate_serial,
            "certificate_not_after": status.security.certificate_not_after,
            "certificate_not_after_text": sim::utc_date(status.security.certificate_not_after),
            "revoked_file": status.security.revoked_file,
            "revoked_serials": status.security.revoked_serials,
            "revoked_refused": status.security.revoked_refused,
        },
        "oldest_unacknowledged_write_ms": status.oldest_unacknowledged_write_ms,
        "members_changed_ms": status.members_changed_ms,
    }))
}

/// `status` for people.
pub(crate) fn status_text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} (incarnation {}) listening on {}, up {:.1} s, gossip every {} ms",
        status.id,
        status.incarnation,
        status.listen,
        status.uptime_ms as f64 / 1e3,
        status.interval_ms
    );
    match (&status.storage.data_dir, &status.storage.sync) {
        (Some(dir), sync) => {
            let _ = writeln!(
                out,
                "storage     {dir} (sync {}), {} bytes on disk",
                sync.as_deref().unwrap_or("-"),
                status.storage.disk_bytes
            );
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "storage     in memory only: a restart starts empty, as a new incarnation"
            );
        }
    }
    let security = &status.security;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let days_left = (security.certificate_not_after - now).div_euclid(86_400);
    let _ = writeln!(
        out,
        "certificate serial {}, expires {} ({})",
        security.certificate_serial,
        sim::utc_date(security.certificate_not_after),
        if days_left < 0 {
            "EXPIRED".to_owned()
        } else {
            format!("{days_left} days left")
        }
    );
    let _ = writeln!(
        out,
        "revoked     {}",
        match &security.revoked_file {
            Some(file) => format!(
                "{} serials from {file}; {} handshakes refused for them",
                security.revoked_serials, security.revoked_refused
            ),
            None => "no revocation list (--revoked)".to_owned(),
        }
    );
    if let Some(ms) = status.oldest_unacknowledged_write_ms {
        let _ = writeln!(
            out,
            "unacked     the oldest write no peer is known to hold was made {:.1} s ago",
            ms as f64 / 1e3
        );
    }
    if !status.joined {
        let _ = writeln!(
            out,
            "not joined yet: no member has answered, so writes are refused"
        );
    }
    let clock = &status.clock;
    let _ = writeln!(
        out,
        "clock       {}: median peer offset {} over {} peers measured, {} beyond the {} ms maximum",
        if clock.out_of_range {
            "OUT OF RANGE, writes refused"
        } else {
            "in range"
        },
        clock
            .median_offset_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:+} ms")),
        clock.peers_measured,
        clock.peers_beyond,
        status.max_clock_offset_ms
    );
    let _ = writeln!(out);
    out.push_str(&members_table(
        &status.members,
        "members     ",
        "            ",
    ));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "keys        {} live, {} tombstones; content hash {:016x}",
        status.keys, status.tombstones, status.content_hash
    );
    let _ = writeln!(
        out,
        "vector      {} origins, max hlc {}, hash {:016x}",
        status.vector.len(),
        status.max_hlc,
        status.vector_hash
    );
    for o in &status.vector {
        let _ = writeln!(
            out,
            "            member {:>4} incarnation {:>10}  up to hlc {}",
            gossip::origin_member(o.origin).to_string(),
            o.origin.get() >> 32,
            o.hlc
        );
    }
    let m = &status.metrics;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "exchanges   {} started ({} pulled at once), {} completed, {} timed out",
        m.exchanges_started, m.exchanges_pulled, m.exchanges_completed, m.exchanges_timed_out
    );
    let _ = writeln!(
        out,
        "gossip      sent {} messages ({}), received {} ({})",
        m.sent.total_messages(),
        bytes(m.sent.total_bytes()),
        m.received.total_messages(),
        bytes(m.received.total_bytes())
    );
    let _ = writeln!(
        out,
        "entries     {} sent, {} received, {} redundant; {} messages refused, {} late, {} oversize",
        m.entries_sent,
        m.entries_received,
        m.entries_redundant,
        m.messages_rejected,
        m.messages_late,
        m.messages_oversize
    );
    let _ = writeln!(out, "tombstones  {} purged", m.tombstones_purged);
    let t = &status.transport;
    let _ = writeln!(
        out,
        "transport   {} dialed ({} failed), {} accepted, {} handshakes and {} identities refused, \
         {} connections and {} streams refused at their limits, {} handshakes retried, {} streams \
         rejected, {} frames dropped; {} client requests answered, {} refused",
        t.connections_dialed,
        t.connect_failures,
        t.connections_accepted,
        t.handshakes_refused,
        t.identities_refused,
        t.connections_refused_busy,
        t.handshakes_retried,
        t.streams_refused_busy,
        t.streams_rejected,
        t.frames_dropped,
        t.requests_answered,
        t.requests_refused
    );
    out
}

/// What `converged` found.
pub(crate) fn converged(report: &ConvergedReport, as_json: bool) -> String {
    if as_json {
        return json(report);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} after {:.0} ms",
        if report.converged {
            "converged: every node holds the same map"
        } else {
            "NOT CONVERGED"
        },
        report.elapsed_ms
    );
    for n in &report.nodes {
        match (&n.error, n.content_hash) {
            (Some(err), _) => {
                let _ = writeln!(out, "  {:<22} unreachable: {err}", n.node);
            }
            (None, Some(hash)) => {
                let _ = writeln!(
                    out,
                    "  {:<22} node {:<4} {:>8} keys  content {hash:016x}",
                    n.node,
                    n.id.map_or_else(|| "?".to_owned(), |id| id.to_string()),
                    n.keys
                );
            }
            (None, None) => {
                let _ = writeln!(out, "  {:<22} not asked", n.node);
            }
        }
    }
    out
}
