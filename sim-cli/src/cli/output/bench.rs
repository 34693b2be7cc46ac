//! What `sim-cli bench` measured, for people.

use std::fmt::Write as _;

use crate::cli::bench::catch_up::CatchUpReport;
use crate::cli::bench::members::MembersReport;
use crate::cli::bench::spread::SpreadReport;
use crate::cli::output::{bytes, json};

/// What `bench catch-up` measured.
pub(crate) fn catch_up(report: &CatchUpReport, as_json: bool) -> String {
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

/// What `bench members` measured.
pub(crate) fn members(report: &MembersReport, as_json: bool) -> String {
    if as_json {
        return json(report);
    }
    let missing = report.known_ms.iter().filter(|ms| ms.is_none()).count();
    let mut out = format!(
        "{} nodes: each listed all {} members after median {:.0} ms, max {:.0} ms\n",
        report.known_ms.len(),
        report.expected,
        report.median_ms,
        report.max_ms
    );
    out.push_str(&format!(
        "by the nodes' own clocks, each knew them all after median {:.0} ms, max {:.0} ms\n",
        report.node_median_ms, report.node_max_ms
    ));
    if missing > 0 {
        out.push_str(&format!("{missing} nodes did not list them all in time\n"));
    }
    out
}

/// What `bench spread` measured.
pub(crate) fn spread(report: &SpreadReport, as_json: bool) -> String {
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
