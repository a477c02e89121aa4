//! `pktdrill [--tolerance-usecs N] [--define NAME]... [--strict] FILE.pkt...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zcstack_conformance::{report::Line, run_file, RunOptions, Totals};

/// Runs packetdrill scripts against the zcstack engine (virtual clock).
#[derive(Debug, Parser)]
#[command(name = "pktdrill")]
struct Cli {
    /// Timing tolerance in microseconds (a script's --tolerance_usecs wins).
    #[arg(long = "tolerance-usecs")]
    tolerance_usecs: Option<u64>,
    /// Defines NAME for #ifdef.
    #[arg(long = "define", value_name = "NAME")]
    define: Vec<String>,
    /// Switch off the relaxations (PSH, window, option order, split segments).
    #[arg(long)]
    strict: bool,
    /// Scripts to run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = RunOptions {
        tolerance_usecs: cli.tolerance_usecs,
        defines: cli.define,
        strict: cli.strict,
        ..Default::default()
    };
    let mut totals = Totals::default();
    // A closed output (`pktdrill ... | head`) stops the printing, not the
    // verdict: every script still runs and the exit status still counts.
    let mut out = std::io::stdout().lock();
    let mut printing = true;
    for f in &cli.files {
        let outcome = run_file(f, &opts);
        totals.add(&outcome);
        if printing {
            printing = writeln!(out, "{}", Line { path: &f.display().to_string(), outcome: &outcome }).is_ok();
        }
    }
    if printing {
        let _ = writeln!(out, "{totals}");
    }
    if totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
