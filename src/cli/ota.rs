//! `vigil ota`.

/// Subcommands of `vigil ota`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Not available in this build yet (tracked in issue 6).
    Pending,
}

/// Entry point of `vigil ota`.
pub fn main(_cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("`vigil ota` is not available in this build yet (tracked in issue 6)")
}
