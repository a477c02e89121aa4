//! `pktdrill`: runs packetdrill-style scripts against the zcstack engine.
//!
//! A script is parsed ([`parse`]) into timed events, then run ([`run`])
//! against a fresh [`zcstack::Stack`] over an in-memory device on a virtual
//! clock. See `conformance/README.md` for the language subset and the
//! relaxations.

pub mod error;
pub mod frame;
pub mod icmp;
pub mod packet;
pub mod parse;
pub mod preprocess;
pub mod report;
pub mod run;
pub mod syscall;
pub mod value;

pub use report::{Outcome, Totals};
pub use run::{run_script, run_source, RunOptions};

/// Reads and runs the script at `path`.
pub fn run_file(path: &std::path::Path, opts: &RunOptions) -> Outcome {
    match std::fs::read_to_string(path) {
        Ok(src) => run_source(&src, opts),
        Err(e) => Outcome::Fail { line: 0, msg: format!("cannot read: {e}") },
    }
}
