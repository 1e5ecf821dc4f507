//! `vigil ota`: repository tools (keygen, publish, policy, refresh-timestamp, serve) and
//! the device client (provision, status, check, install, boot, trial, commit, rollback,
//! run). The implementation lives in `ota::cli` so the standalone `vigil-ota` binary and
//! the `ota` crate's tests run exactly the same code.

/// Subcommands of `vigil ota`.
pub use ota::cli::Command;

/// Entry point of `vigil ota`.
pub fn main(cmd: Command) -> anyhow::Result<()> {
    ota::cli::main(cmd)
}
