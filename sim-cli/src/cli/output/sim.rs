//! The simulator's reports for people, and its plots.

use std::fmt::Write as _;

use sim::plot::{Chart, Series};
use sim::{SimReport, SweepReport};

use crate::cli::output::bytes;

/// `1 round`, `2 rounds`.
fn rounds(n: u64) -> String {
    counted(n, "round")
}

/// `1 write`, `2 writes`.
fn counted(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The report for people.
pub(crate) fn simulate_report(report: &SimReport) -> String {
    let s = &report.scenario;
    let o = &report.outcome;
    let mut out = String::new();
    let timing = if s.threads {
        format!(
            "threaded timing ({} driver threads, {} client threads, wall-clock)",
            s.nodes, s.client_threads
        )
    } else {
        match s.timing {
            transport_mem::Timing::Lockstep => "lockstep timing".to_owned(),
            transport_mem::Timing::Staggered { latency_ms } => {
                format!("staggered timing with {latency_ms} ms latency")
            }
        }
    };
    let _ = writeln!(
        out,
        "{} nodes, fan-out {}, {} over {} ({:.0} % deletes, {}), {}, seed {}",
        s.nodes,
        s.fanout,
        counted(s.writes as u64, "write"),
        counted(s.keys as u64, "key"),
        s.deletes * 100.0,
        match s.write_pattern {
            sim::WritePattern::Burst => "all at once".to_owned(),
            sim::WritePattern::Steady => format!("spread over {}", rounds(s.write_rounds)),
            sim::WritePattern::EachNode => "one per node, all at once".to_owned(),
            sim::WritePattern::Single => "one, on one node".to_owned(),
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
                let _ = writeln!(out, "            {} after the last write", rounds(after));
            }
            if let Some(after) = o.rounds_after_faults {
                let _ = writeln!(out, "            {} after the faults ended", rounds(after));
            }
            if let Some(time) = &report.time
                && let (Some(ms), Some(intervals)) = (time.converged_ms, time.converged_intervals)
            {
                let _ = writeln!(
                    out,
                    "            every live node held every write at {ms} ms = {intervals:.2} \
                     intervals (sampled every {} ms)",
                    time.sample_ms
                );
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
    if let Some(time) = &report.time {
        let spread = &time.spread;
        if let (Some(p50), Some(p99), Some(max)) = (spread.p50_ms, spread.p99_ms, spread.max_ms) {
            let interval = s.interval_ms.max(1) as f64;
            let _ = writeln!(
                out,
                "spread      per write, until every live node held it: p50 {p50} ms ({:.2} \
                 intervals), p99 {p99} ms ({:.2}), max {max} ms ({:.2}); {} writes{}",
                p50 as f64 / interval,
                p99 as f64 / interval,
                max as f64 / interval,
                spread.writes,
                if spread.unspread > 0 {
                    format!(", {} never reached every node", spread.unspread)
                } else {
                    String::new()
                }
            );
        }
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
    if let Some(idle) = t.idle_bytes_per_node_per_round {
        let _ = writeln!(
            out,
            "idle        {idle:.0} bytes per node per round in the {} rounds after convergence",
            sim::IDLE_ROUNDS
        );
    }
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
        if f.expired > 0 {
            let _ = writeln!(
                out,
                "            {} nodes expired (silent past --retention-rounds) and restarted empty",
                f.expired
            );
        }
    } else {
        let _ = writeln!(out, "faults      none");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "replay      {}", report.command);
    out
}

/// The convergence curve of one run: per round, or under staggered timing
/// sampled within rounds, against gossip intervals.
pub(crate) fn curve_chart(report: &SimReport) -> Chart {
    let interval = report.scenario.interval_ms.max(1) as f64;
    let (points, x_label) = match &report.time {
        Some(time) => (
            time.curve
                .iter()
                .map(|&(ms, f)| (ms as f64 / interval, f * 100.0))
                .collect(),
            format!("gossip intervals (sampled every {} ms)", time.sample_ms),
        ),
        None => (
            report
                .curve
                .iter()
                .enumerate()
                .map(|(i, f)| ((i + 1) as f64, f * 100.0))
                .collect(),
            "round".to_owned(),
        ),
    };
    Chart {
        title: format!(
            "Convergence: {} nodes, fan-out {}, seed {}",
            report.scenario.nodes, report.scenario.fanout, report.scenario.seed
        ),
        x_label,
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

/// The sweep as a table.
pub(crate) fn sweep_table(report: &SweepReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>5} | {:>6} {:>5} {:>5} {:>7} | {:>11} | {:>11} | {:>6}",
        "nodes",
        "fan-out",
        "runs",
        report.unit,
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
            "{:>7} {:>7} {:>5} | {:>6.2} {:>5.2} {:>5.2} {:>7.2} | {:>11} | {:>11.2} | {:>6}",
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
        "{}: until every node holds one update (mean, p50, p99 over seeds){}; theory (in \
         rounds): log_(2f+1) N + log_(f+1) ln N, which is log3 N + log2 ln N at fan-out 1",
        report.unit,
        if report.unit == "intervals" {
            ", in gossip intervals of virtual time, sampled 20 times per interval"
        } else {
            ""
        }
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
