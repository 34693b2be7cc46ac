//! Shared fixtures for the daemon tests: temporary directories, node
//! processes that are stopped on drop, and polling with a deadline.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sim-cli")
}

/// Runs the binary with `args` (after `prefix`, e.g. `ip netns exec NS`).
pub fn run_in(prefix: &[&str], args: &[&str]) -> Output {
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sim-cli runs")
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    run_in(&[], args)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "gossip-kv-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn str(&self, name: &str) -> String {
        self.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `sim-cli node`, its stderr in a file; killed on drop if it is
/// still running.
pub struct NodeProc {
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    /// Starts `sim-cli node ARGS` (after `prefix`), logging to `log`.
    pub fn start(prefix: &[&str], args: &[&str], log: PathBuf) -> NodeProc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let child = command
            .arg("node")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("sim-cli node starts");
        NodeProc { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address from the "node started" log line, once it is there.
    pub fn listen_addr(&self, limit: Duration) -> String {
        let mut found = None;
        let ok = eventually(limit, || {
            found = self.log().lines().find_map(|line| {
                let line = line.split("node started").nth(1)?;
                let rest = line.split("listen=").nth(1)?;
                Some(rest.split_whitespace().next()?.to_owned())
            });
            found.is_some()
        });
        assert!(ok, "the node never logged its start:\n{}", self.log());
        found.unwrap()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        self.wait(limit)
    }

    /// Sends a signal by name (`-TERM`, `-INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(name)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long the daemon tests wait for anything.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Writes certificates for `nodes` (`sim-cli certs --nodes`) naming
/// 127.0.0.1 into `dir/name`; returns the directory.
pub fn certs(dir: &TempDir, name: &str, nodes: &str) -> String {
    let out = dir.str(name);
    let o = run(&[
        "certs",
        "--out",
        &out,
        "--nodes",
        nodes,
        "--name",
        "127.0.0.1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    out
}

/// A loopback address with a port free a moment ago.
pub fn free_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// `sim-cli CMD ARGS --node ADDR --certs DIR`.
pub fn client(cmd: &str, args: &[&str], node: &str, certs: &str) -> std::process::Output {
    let mut all = vec![cmd];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--node", node, "--certs", certs]);
    run(&all)
}

pub fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

/// Stops every node at once with SIGTERM; each must exit 0.
pub fn stop_all(nodes: &mut [&mut NodeProc]) {
    for node in nodes.iter() {
        node.signal("-TERM");
    }
    for node in nodes.iter_mut() {
        let status = node.wait(LIMIT).expect("exits after SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", node.log());
    }
}

/// A node run in-process (`sim::node::run`) on a thread of the test,
/// stopped by completing its shutdown future.
pub struct InProcess {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), sim::node::NodeError>>,
}

impl InProcess {
    pub fn start(config: sim::node::NodeConfig) -> InProcess {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            sim::node::run(config, async {
                let _ = stopped.await;
                "the test stopped it"
            })
        });
        InProcess { stop, thread }
    }

    /// Completes the shutdown future; returns what `run` returned.
    pub fn stop(self) -> Result<(), sim::node::NodeError> {
        let _ = self.stop.send(());
        self.thread.join().unwrap()
    }

    /// Whether `run` has returned (a refused start, say).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}
