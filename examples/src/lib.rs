//! Start-up shared by the examples: logging, `config.ini` to a running
//! [`Runtime`], and exit codes.

use std::error::Error;
use std::process::ExitCode;

use dpdk_glue::config::Config;
use dpdk_glue::Runtime;

/// `tracing` to stderr, filtered by `RUST_LOG`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// Loads `path`, prints its report of F-Stack keys zcstack does not
/// implement, starts the runtime on port 0, and makes SIGINT/SIGTERM stop
/// its loop cleanly.
pub fn runtime_from_conf(tool: &str, path: &str) -> Result<Runtime, Box<dyn Error>> {
    let conf = Config::load(path)?;
    for n in &conf.report {
        eprintln!("{tool}: {path}: not implemented by zcstack: {n}");
    }
    let rt = Runtime::init(&conf.runtime(0)?)?;
    rt.stop_handle().stop_on_signals();
    Ok(rt)
}

/// The process exit code for `r`, printing the error.
pub fn exit(tool: &str, r: Result<(), Box<dyn Error>>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
