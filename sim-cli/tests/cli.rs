//! The `sim-cli` binary as a user meets it: exit statuses, report contents,
//! JSON fields, reproducibility and bad flags.

use std::process::{Command, Output};

fn sim_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim-cli"))
        .args(args)
        .output()
        .expect("sim-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn default_simulation_converges_verifies_and_exits_zero() {
    let out = sim_cli(&["simulate", "--nodes", "40", "--writes", "300"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("converged   in"), "{text}");
    assert!(text.contains("verified    all 40 live replicas"), "{text}");
    assert!(
        text.contains("replay      sim-cli simulate --nodes 40"),
        "{text}"
    );
}

#[test]
fn a_round_budget_too_small_exits_one() {
    let out = sim_cli(&[
        "simulate", "--nodes", "200", "--fanout", "1", "--rounds", "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT CONVERGED within 2 rounds"));
}

#[test]
fn json_has_the_documented_fields() {
    let out = sim_cli(&[
        "simulate", "--nodes", "30", "--writes", "100", "--loss", "0.1", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    for pointer in [
        "/command",
        "/scenario/nodes",
        "/outcome/converged",
        "/outcome/converged_round",
        "/outcome/rounds_run",
        "/curve",
        "/writes/accepted",
        "/writes/lost_in_crashes",
        "/traffic/messages/total",
        "/traffic/bytes/syn",
        "/traffic/redundancy",
        "/traffic/exchanges/timed_out",
        "/faults/messages_lost",
        "/verification/ok",
        "/verification/first_divergence",
    ] {
        assert!(doc.pointer(pointer).is_some(), "missing {pointer} in {doc}");
    }
    assert_eq!(doc["outcome"]["converged"], true);
    assert_eq!(doc["verification"]["ok"], true);
    assert!(doc["faults"]["messages_lost"].as_u64().unwrap_or(0) > 0);
    let curve = doc["curve"].as_array().expect("curve is an array");
    assert_eq!(curve.last().and_then(serde_json::Value::as_f64), Some(1.0));
}

#[test]
fn one_seed_gives_identical_output_and_another_seed_differs() {
    let args = [
        "simulate",
        "--nodes",
        "50",
        "--writes",
        "200",
        "--loss",
        "0.2",
        "--reorder",
        "0.2",
        "--duplicate",
        "0.1",
        "--crash-rate",
        "0.02",
        "--unavailable",
        "0.2",
        "--partition",
        "2..6",
        "--clock-skew-ms",
        "300",
        "--timing",
        "staggered",
        "--seed",
        "7",
    ];
    let first = sim_cli(&args);
    let second = sim_cli(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&second));
    let mut other = args.to_vec();
    *other.last_mut().expect("seed value") = "8";
    assert_ne!(stdout(&first), stdout(&sim_cli(&other)));
}

#[test]
fn the_replay_command_reproduces_the_report() {
    let out = sim_cli(&[
        "simulate", "--nodes", "20", "--writes", "50", "--loss", "0.1",
    ]);
    let text = stdout(&out);
    let replay = text
        .lines()
        .find_map(|l| l.strip_prefix("replay      sim-cli "))
        .expect("a replay line");
    let args: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(stdout(&sim_cli(&args)), text);
}

#[test]
fn bad_flags_exit_two_with_a_one_line_reason() {
    for (args, needle) in [
        (vec!["simulate", "--nodes", "many"], "invalid value 'many'"),
        (
            vec!["simulate", "--loss", "1.5"],
            "--loss must lie between 0 and 1",
        ),
        (
            vec!["simulate", "--partition", "9..3"],
            "ends before it starts",
        ),
        (
            vec!["simulate", "--partition", "soon"],
            "expected START..END",
        ),
        (
            vec!["simulate", "--nodes", "0"],
            "--nodes must be at least 1",
        ),
        (
            vec!["simulate", "--fanout", "5", "--nodes", "5"],
            "--fanout 5 must be below",
        ),
        (
            vec!["simulate", "--threads", "--crash-rate", "0.1"],
            "not available with --threads",
        ),
        (vec!["simulate", "--no-such-flag"], "unexpected argument"),
        // Inputs that are in range but cannot mean what was wanted, or
        // cannot fit: refused before anything runs.
        (
            vec!["simulate", "--nodes", "4294967295"],
            "lower --nodes, --writes or --keys",
        ),
        (
            vec!["simulate", "--writes", "18446744073709551615"],
            "more than the",
        ),
        (vec!["simulate", "--seed-peers", "0"], "--seed-peers 0"),
        (
            vec!["simulate", "--timing", "staggered", "--latency-ms", "600"],
            "--latency-ms 600",
        ),
        (
            vec!["simulate", "--partition", "3..300"],
            "--partition 3..300 lasts until round 300",
        ),
        (
            vec!["simulate", "--loss", "0.1", "--fault-rounds", "500"],
            "--fault-rounds 500 lasts",
        ),
        (
            vec!["simulate", "--fault-rounds", "0", "--loss", "0.5"],
            "--loss is set but --fault-rounds is 0",
        ),
        (vec!["simulate", "--unavailable", "1"], "--unavailable 1"),
        (
            vec!["simulate", "--loss", "-0.1"],
            "--loss must lie between 0 and 1, got -0.1",
        ),
        (
            vec![
                "simulate",
                "--nodes",
                "10",
                "--plot",
                "/nonexistent/dir/x.svg",
            ],
            "--plot /nonexistent/dir/x.svg",
        ),
        (vec!["sweep", "--seeds", "0"], "--seeds"),
        (
            vec!["sweep", "--nodes", "10", "--plot", "/nonexistent/dir/x.svg"],
            "--plot",
        ),
    ] {
        let out = sim_cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?} printed a report");
    }
}

#[test]
fn simulate_writes_a_plot() {
    let dir = std::env::temp_dir().join(format!("sim-cli-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("curve.svg");
    let path_arg = path.to_string_lossy().into_owned();
    let out = sim_cli(&[
        "simulate", "--nodes", "20", "--writes", "20", "--plot", &path_arg,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&path).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_prints_a_table_beside_theory() {
    let out = sim_cli(&[
        "sweep", "--nodes", "10,50", "--fanout", "1,2", "--seeds", "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.contains(" | ")).count(),
        5,
        "{text}"
    );
    let json = sim_cli(&[
        "sweep", "--nodes", "10", "--fanout", "1", "--seeds", "2", "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert!(doc.pointer("/points/0/rounds/p99").is_some());
    assert!(doc.pointer("/points/0/theory").is_some());
}

#[test]
fn threaded_simulation_verifies() {
    let out = sim_cli(&[
        "simulate",
        "--threads",
        "--nodes",
        "16",
        "--client-threads",
        "8",
        "--interval-ms",
        "20",
        "--writes",
        "400",
        "--write-pattern",
        "steady",
        "--rounds",
        "1000",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("verified    all 16 live replicas"));
}

#[test]
fn the_base_protocol_and_the_idle_fanout_verify_and_replay() {
    let out = sim_cli(&[
        "simulate",
        "--nodes",
        "40",
        "--writes",
        "200",
        "--loss",
        "0.2",
        "--crash-rate",
        "0.02",
        "--partition",
        "2..8",
        "--unoptimised",
        "--idle-fanout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verified    all"), "{text}");
    let replay = text
        .lines()
        .find_map(|l| l.strip_prefix("replay      sim-cli "))
        .expect("a replay line");
    assert!(replay.contains("--idle-fanout 1 --unoptimised"), "{replay}");
    let args: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(stdout(&sim_cli(&args)), text);
}

#[test]
fn the_retention_window_expires_nodes_down_past_it_but_never_a_half() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--nodes",
            "20",
            "--write-pattern",
            "steady",
            "--rounds",
            "400",
            "--retention-rounds",
            "30",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = sim_cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(doc["verification"]["ok"], true, "{doc}");
        doc["faults"]["expired"].as_u64().unwrap_or(0)
    };
    // Two halves cut apart for six windows: neither expires the other.
    let halves = run(&[
        "--partition",
        "5..185",
        "--write-rounds",
        "150",
        "--fault-rounds",
        "190",
    ]);
    assert_eq!(halves, 0);
    // Nodes down with their state for twice the window are expired, and
    // restarted empty; the rest verifies.
    let expired = run(&[
        "--crash-rate",
        "0.01",
        "--crash-mode",
        "keep",
        "--crash-downtime",
        "60",
        "--write-rounds",
        "40",
        "--fault-rounds",
        "40",
    ]);
    assert!(expired > 0);
}
