//! Every line the binary prints goes through here: reports for humans, JSON
//! for machines, errors as one line on stderr.

use std::fmt::Write as _;
use std::io::{self, Write};

use sim::plot::{Chart, Series};
use sim::{SimReport, SweepReport};

/// Prints `text` to stdout; a closed pipe ends the program quietly.
pub(crate) fn emit(text: &str) {
    let mut out = io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Prints a one-line error to stderr.
pub(crate) fn error(message: &str) {
    let _ = writeln!(io::stderr(), "error: {message}");
}

/// The report as one JSON document.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"report could not be serialized: {e}\"}}"));
    text.push('\n');
    text
}

/// The report for people.
pub(crate) fn simulate_report(report: &SimReport) -> String {
    let s = &report.scenario;
    let o = &report.outcome;
    let mut out = String::new();
    let timing = if s.threads {
        format!(
            "threaded ({} driver threads, {} client threads, wall-clock)",
            s.nodes, s.client_threads
        )
    } else {
        match s.timing {
            transport_mem::Timing::Lockstep => "lockstep".to_owned(),
            transport_mem::Timing::Staggered { latency_ms } => {
                format!("staggered, {latency_ms} ms latency")
            }
        }
    };
    let _ = writeln!(
        out,
        "{} nodes, fan-out {}, {} writes over {} keys ({:.0} % deletes, {}), {} timing, seed {}",
        s.nodes,
        s.fanout,
        s.writes,
        s.keys,
        s.deletes * 100.0,
        match s.write_pattern {
            sim::WritePattern::Burst => "all at once".to_owned(),
            sim::WritePattern::Steady => format!("spread over {} rounds", s.write_rounds),
        },
        timing,
        s.seed
    );
    let _ = writeln!(out);
    match o.converged_round {
        Some(round) => {
            let _ = writeln!(
                out,
                "converged   in {} rounds = {} gossip intervals = {:.1} s of {} time",
                round,
                o.intervals.unwrap_or(round),
                o.virtual_seconds.unwrap_or_default(),
                if s.threads { "wall-clock" } else { "virtual" }
            );
            if let Some(after) = o.rounds_after_last_write.filter(|_| s.writes_end() > 0) {
                let _ = writeln!(out, "            {after} rounds after the last write");
            }
            if let Some(after) = o.rounds_after_faults {
                let _ = writeln!(out, "            {after} rounds after the faults ended");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "NOT CONVERGED within {} rounds ({:.1} % of live nodes up to date at the end)",
                o.rounds_run,
                report.curve.last().copied().unwrap_or_default() * 100.0
            );
        }
    }
    let v = &report.verification;
    if v.ok {
        let _ = writeln!(
            out,
            "verified    all {} live replicas read exactly the reference ({} live keys)",
            v.nodes_checked, v.keys_checked
        );
    } else if let Some(m) = &v.first_divergence {
        let _ = writeln!(
            out,
            "VERIFICATION FAILED  node {} reads {} for key {:?}; the reference reads {}",
            m.node,
            shown(m.found.as_deref()),
            m.key,
            shown(m.expected.as_deref())
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "round  nodes up to date");
    for (i, fraction) in sampled(&report.curve) {
        let bar = "#".repeat((fraction * 40.0).round() as usize);
        let _ = writeln!(out, "{:>5}  {:>6.1} %  {bar}", i + 1, fraction * 100.0);
    }
    let _ = writeln!(out);
    let t = &report.traffic;
    let _ = writeln!(
        out,
        "messages    {} (syn {}, syn-ack {}, ack {})",
        t.messages.total, t.messages.syn, t.messages.syn_ack, t.messages.ack
    );
    let _ = writeln!(
        out,
        "bytes       {} (syn {}, syn-ack {}, ack {})",
        bytes(t.bytes.total),
        bytes(t.bytes.syn),
        bytes(t.bytes.syn_ack),
        bytes(t.bytes.ack)
    );
    let _ = writeln!(
        out,
        "entries     {} received, {} useful: redundancy {:.2} copies per useful entry",
        t.entries_received, t.entries_useful, t.redundancy
    );
    let _ = writeln!(
        out,
        "exchanges   {} started, {} completed, {} timed out",
        t.exchanges.started, t.exchanges.completed, t.exchanges.timed_out
    );
    let w = &report.writes;
    let _ = writeln!(
        out,
        "writes      {} accepted ({} deletes), {} refused, {} lost with crashed nodes",
        w.accepted, w.deletes, w.refused, w.lost_in_crashes
    );
    let f = &report.faults;
    if s.has_faults() || s.clock_skew_ms > 0 {
        let _ = writeln!(
            out,
            "faults      {} unavailable periods, {} crashes; messages: {} lost, {} duplicated, \
             {} reordered, {} cut by partition, {} to unavailable nodes, {} refused",
            f.unavailable_periods,
            f.crashes,
            f.messages_lost,
            f.messages_duplicated,
            f.messages_reordered,
            f.messages_partitioned,
            f.messages_to_unavailable,
            f.messages_rejected
        );
        if s.clock_skew_ms > 0 {
            let _ = writeln!(out, "            clock skew spread {} ms", s.clock_skew_ms);
        }
    } else {
        let _ = writeln!(out, "faults      none");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "replay      {}", report.command);
    out
}

/// The per-round convergence curve of one run.
pub(crate) fn curve_chart(report: &SimReport) -> Chart {
    let points = report
        .curve
        .iter()
        .enumerate()
        .map(|(i, f)| ((i + 1) as f64, f * 100.0))
        .collect();
    Chart {
        title: format!(
            "Convergence: {} nodes, fan-out {}, seed {}",
            report.scenario.nodes, report.scenario.fanout, report.scenario.seed
        ),
        x_label: "round".into(),
        y_label: "nodes up to date (%)".into(),
        log_x: false,
        y_range: Some((0.0, 100.0)),
        series: vec![Series {
            name: "up to date".into(),
            points,
            dashed: false,
            colour: 0,
        }],
    }
}

/// The sweep as a table.
/// `fuzz` for people: the verdict, the heal times, and every failure's
/// replay command.
pub(crate) fn fuzz_report(report: &sim::FuzzReport) -> String {
    let mut out = String::new();
    let spec = &report.spec;
    let _ = writeln!(
        out,
        "runs        {} drawn with seed {}: {} converged and verified, {} failed",
        spec.runs,
        spec.seed,
        report.passed,
        report.failures.len()
    );
    let _ = writeln!(
        out,
        "heal        {:.2} rounds on average, {} at most, from the end of faults and writes to \
         convergence ({} runs converged)",
        report.mean_rounds_to_heal, report.max_rounds_to_heal, report.converged
    );
    if let Some(slowest) = &report.slowest {
        let _ = writeln!(out, "slowest     {slowest}");
    }
    for failure in &report.failures {
        let verdict = match (failure.converged, failure.verified) {
            (false, _) => "NOT CONVERGED",
            (true, false) => "CONVERGED BUT WRONG",
            (true, true) => "FAILED",
        };
        let _ = writeln!(out, "run {:<6} {verdict}: {}", failure.run, failure.command);
    }
    let _ = writeln!(
        out,
        "replay      sim-cli fuzz --runs {} --seed {}",
        spec.runs, spec.seed
    );
    out
}

pub(crate) fn sweep_table(report: &SweepReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>5} | {:>6} {:>5} {:>5} {:>7} | {:>11} | {:>11} | {:>6}",
        "nodes",
        "fan-out",
        "runs",
        "rounds",
        "p50",
        "p99",
        "theory",
        "bytes/node",
        "copies/node",
        "failed"
    );
    for p in &report.points {
        let _ = writeln!(
            out,
            "{:>7} {:>7} {:>5} | {:>6.2} {:>5} {:>5} {:>7.2} | {:>11} | {:>11.2} | {:>6}",
            p.nodes,
            p.fanout,
            p.runs,
            p.rounds.mean,
            p.rounds.p50,
            p.rounds.p99,
            p.theory,
            bytes(p.bytes_per_node.mean.round() as u64),
            p.copies_per_node.mean,
            p.failed
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "rounds: until every node holds one update (mean, p50, p99 over seeds); theory: \
         log_(2f+1) N + log_(f+1) ln N, which is log3 N + log2 ln N at fan-out 1"
    );
    let _ = writeln!(out, "replay  {}", report.command);
    out
}

/// Rounds against cluster size, one line per fan-out, theory dashed.
pub(crate) fn sweep_chart(report: &SweepReport) -> Chart {
    let mut fanouts: Vec<usize> = report.points.iter().map(|p| p.fanout).collect();
    fanouts.sort_unstable();
    fanouts.dedup();
    let mut series = Vec::new();
    for (colour, fanout) in fanouts.into_iter().enumerate() {
        let points: Vec<&sim::SweepPoint> = report
            .points
            .iter()
            .filter(|p| p.fanout == fanout)
            .collect();
        series.push(Series {
            name: format!("fan-out {fanout}, measured"),
            points: points
                .iter()
                .map(|p| (p.nodes as f64, p.rounds.mean))
                .collect(),
            dashed: false,
            colour,
        });
        series.push(Series {
            name: format!("fan-out {fanout}, theory"),
            points: points.iter().map(|p| (p.nodes as f64, p.theory)).collect(),
            dashed: true,
            colour,
        });
    }
    Chart {
        title: "Rounds for one update to reach every node".into(),
        x_label: "nodes (log scale)".into(),
        y_label: "rounds (mean over seeds)".into(),
        log_x: true,
        y_range: None,
        series,
    }
}

/// At most 30 rounds of the curve: all of a short run, or an even sample that
/// keeps the first and last.
fn sampled(curve: &[f64]) -> Vec<(usize, f64)> {
    let len = curve.len();
    if len <= 30 {
        return curve.iter().copied().enumerate().collect();
    }
    let mut picks: Vec<usize> = (0..30).map(|i| i * (len - 1) / 29).collect();
    picks.dedup();
    picks.into_iter().map(|i| (i, curve[i])).collect()
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
}

/// A byte count with a binary unit.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

// ---- certificates, node and client commands ----

/// What `certs` wrote.
pub(crate) fn certs_report(report: &crate::certs::CertsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} in {}: {} node certificate(s){}",
        if report.new_ca {
            "new cluster CA"
        } else {
            "existing cluster CA"
        },
        report.dir.display(),
        report.nodes.len(),
        if report.new_ca {
            " and the client certificate"
        } else {
            ""
        }
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
        }) => format!("{value}\nstamp  {}\n", stamp_text(stamp)),
        Some(lww_crdt::Entry { stamp, value: None }) => {
            format!("absent: {key:?} was deleted, {}\n", stamp_text(stamp))
        }
        None => format!("absent: {key:?} was never written (as far as this node knows)\n"),
    }
}

fn liveness_text(liveness: Option<gossip::Liveness>) -> &'static str {
    match liveness {
        None => "self",
        Some(gossip::Liveness::Alive) => "alive",
        Some(gossip::Liveness::Suspect) => "suspect",
        Some(gossip::Liveness::Down) => "down",
        Some(gossip::Liveness::Left) => "left",
    }
}

/// Members as JSON values: one object each.
fn members_json_values(members: &[sim::client::proto::MemberStatus]) -> Vec<serde_json::Value> {
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
            })
        })
        .collect()
}

/// The member table, its header line starting with `first` and each row
/// with `rest`.
fn members_table(members: &[sim::client::proto::MemberStatus], first: &str, rest: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{first}{:>6}  {:<24} {:<8} {:>11} {:>8} {:>12}",
        "id", "address", "state", "incarnation", "failures", "last heard"
    );
    for m in members {
        let _ = writeln!(
            out,
            "{rest}{:>6}  {:<24} {:<8} {:>11} {:>8} {:>12}",
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
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms ago"))
        );
    }
    out
}

/// `members`: one line per member, this node first, or a JSON array.
pub(crate) fn members(status: &sim::client::proto::Status, json_out: bool) -> String {
    if json_out {
        json(&members_json_values(&status.members))
    } else {
        members_table(&status.members, "", "")
    }
}

/// `status` as JSON.
pub(crate) fn status_json(status: &sim::client::proto::Status) -> String {
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
    }))
}

/// `status` for people.
pub(crate) fn status_text(status: &sim::client::proto::Status) -> String {
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
    if !status.joined {
        let _ = writeln!(
            out,
            "not joined yet: no member has answered, so writes are refused"
        );
    }
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
         {} streams rejected, {} frames dropped; {} client requests answered, {} refused",
        t.connections_dialed,
        t.connect_failures,
        t.connections_accepted,
        t.handshakes_refused,
        t.identities_refused,
        t.streams_rejected,
        t.frames_dropped,
        t.requests_answered,
        t.requests_refused
    );
    out
}

/// What `converged` found.
pub(crate) fn converged(report: &crate::bench::ConvergedReport, as_json: bool) -> String {
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

/// What `bench catch-up` measured.
pub(crate) fn catch_up(report: &crate::bench::CatchUpReport, as_json: bool) -> String {
    if as_json {
        return json(report);
    }
    let mut out = String::new();
    let secs = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mb_s = |bytes: u64, secs: f64| bytes as f64 / secs / 1e6;
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "catch-up of {} keys ({}-byte keys, {}-byte values: {} of data), gossip every {} ms, \
         messages up to {}",
        report.keys,
        report.key_bytes,
        report.value_bytes,
        bytes(report.data_bytes),
        report.interval_ms,
        bytes(report.max_message_bytes as u64)
    );
    let _ = writeln!(
        out,
        "gossip over QUIC   {} s; median {:.2} s: {} on the wire ({:.2} x the data) in {} frames, \
         {:.0} keys/s",
        secs(&report.gossip_secs),
        report.median_secs,
        bytes(report.median_bytes),
        report.median_bytes as f64 / report.data_bytes.max(1) as f64,
        report
            .gossip_frames
            .get(report.gossip_secs.len() / 2)
            .copied()
            .unwrap_or_default(),
        report.keys_per_sec
    );
    let _ = writeln!(
        out,
        "gossip in memory   {:.2} s with frames handed over in one thread (the protocol's own \
         work, no network)",
        report.memory_secs
    );
    let _ = writeln!(
        out,
        "raw quinn          {} s moving the same {} on one stream ({:.0} MB/s)",
        secs(&report.raw_wire_secs),
        bytes(report.median_bytes),
        mb_s(report.median_bytes, median(&report.raw_wire_secs))
    );
    let _ = writeln!(
        out,
        "raw quinn          {} s moving the data set once ({:.0} MB/s)",
        secs(&report.raw_data_secs),
        mb_s(report.data_bytes, median(&report.raw_data_secs))
    );
    let _ = writeln!(
        out,
        "wire ratio         {:.1} % of raw quinn's throughput on the same bytes (target >= 50 %)",
        report.wire_ratio * 100.0
    );
    let _ = writeln!(
        out,
        "goodput ratio      {:.1} % of raw quinn's time to move the data set once",
        report.data_ratio * 100.0
    );
    out
}

/// What `bench spread` measured.
pub(crate) fn spread(report: &crate::bench::SpreadReport, as_json: bool) -> String {
    if as_json {
        return json(report);
    }
    let each: Vec<String> = report
        .visible_ms
        .iter()
        .map(|ms| format!("{ms:.0}"))
        .collect();
    format!(
        "{} writes over {} nodes: visible on every node after median {:.0} ms, max {:.0} ms\n\
         each (ms): {}\n",
        report.visible_ms.len(),
        report.nodes.len(),
        report.median_ms,
        report.max_ms,
        each.join(" ")
    )
}
