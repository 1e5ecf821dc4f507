//! `vigil analytics`.

/// Subcommands of `vigil analytics`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Not available in this build yet (tracked in issue 7).
    Pending,
}

/// Entry point of `vigil analytics`.
pub fn main(_cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("`vigil analytics` is not available in this build yet (tracked in issue 7)")
}
