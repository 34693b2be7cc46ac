//! Every line the binary prints goes through here: reports for humans, JSON
//! for machines, errors as one line on stderr.

use std::fmt::Write as _;
use std::io::{self, Write};

use sim::SimReport;
use sim::plot::{Chart, Series};

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
    let timing = match s.timing {
        transport_mem::Timing::Lockstep => "lockstep".to_owned(),
        transport_mem::Timing::Staggered { latency_ms } => {
            format!("staggered, {latency_ms} ms latency")
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
                "converged   in {} rounds = {} gossip intervals = {:.1} s of virtual time",
                round,
                o.intervals.unwrap_or(round),
                o.virtual_seconds.unwrap_or_default()
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
        }],
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
