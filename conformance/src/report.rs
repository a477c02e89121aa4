//! The result of one script and the lines `pktdrill` prints.

use std::fmt;

/// How a script ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every event happened as written.
    Pass,
    /// An event did not: its line and what differed.
    Fail {
        /// Line of the event (0: the script as a whole).
        line: usize,
        /// Expected vs got.
        msg: String,
    },
    /// The script needs something the runner or engine does not have.
    Skip {
        /// Line that asked for it.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// One script's report line.
#[derive(Debug)]
pub struct Line<'a> {
    /// The script's path as given.
    pub path: &'a str,
    /// Its outcome.
    pub outcome: &'a Outcome,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Pass => write!(f, "PASS {}", self.path),
            Outcome::Fail { line, msg } => write!(f, "FAIL {}:{line}: {msg}", self.path),
            // The issue's `SKIP path: reason`; the line goes inside the reason.
            Outcome::Skip { line, reason } => write!(f, "SKIP {}: {reason} (line {line})", self.path),
        }
    }
}

/// Counts over several scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Totals {
    /// Counts one outcome.
    pub fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail { .. } => self.failed += 1,
            Outcome::Skip { .. } => self.skipped += 1,
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pktdrill: {} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }
}
