//! `sim-cli`: simulate the gossip-replicated store, run its nodes, query them.
//!
//! Exit status: 0 when a simulation converged and verified, 1 when it did not
//! converge within its round budget or failed verification, 2 for usage or
//! internal errors. The other commands follow the same rule: `get` exits 1
//! when the key is absent, `converged` when the nodes did not converge in
//! time; `node` exits 0 after a clean shutdown on SIGINT or SIGTERM; every
//! error (bad flags, certificates, an unreachable node, a refused request)
//! exits 2 with one line on stderr.
//!
//! This file only parses the command line and hands each subcommand to its
//! `run` in `cli/`; the simulator, the node and the client are the `sim`
//! library's.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, output};

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Simulate(args) => cli::simulate::run(&args),
        Command::Sweep(args) => cli::sweep::run(&args),
        Command::Fuzz(args) => cli::fuzz::run(&args),
        Command::Certs(args) => cli::certs::run(&args),
        Command::Node(args) => cli::node::run(&args),
        Command::Put(args) => cli::put::run(&args),
        Command::Get(args) => cli::get::run(&args),
        Command::Delete(args) => cli::delete::run(&args),
        Command::Keys(args) => cli::keys::run(&args),
        Command::Watch(args) => cli::watch::run(&args),
        Command::Status(args) => cli::status::run(&args),
        Command::Members(args) => cli::members::run(&args),
        Command::Converged(args) => cli::converged::run(&args),
        Command::Bench(command) => cli::bench::run(&command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}
