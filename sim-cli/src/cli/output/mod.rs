//! Every line the binary prints goes through here: reports for humans, JSON
//! for machines, errors as one line on stderr.
//!
//! - `sim`: the simulator's reports and plots;
//! - `cluster`: certificates written, and what nodes answer (writes,
//!   entries, members, status, convergence);
//! - `bench`: the measurements.

pub(crate) mod bench;
pub(crate) mod cluster;
pub(crate) mod sim;

use std::io::{self, Write};

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

/// A byte count with a binary unit.
pub(crate) fn bytes(count: u64) -> String {
    ::sim::human_bytes(count)
}

/// Seconds since 1970 as a UTC date.
pub(crate) fn utc_date(unix_secs: i64) -> String {
    ::sim::utc_date(unix_secs)
}
