//! Typed errors of the script parser.

use thiserror::Error;

/// A script that does not parse: the line it happened on and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line number in the script.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl ParseError {
    /// An error at `line`.
    pub fn new(line: usize, msg: impl Into<String>) -> Self {
        ParseError { line, msg: msg.into() }
    }
}
