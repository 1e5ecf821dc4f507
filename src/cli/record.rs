//! `vigil record`.

/// Subcommands of `vigil record`.
#[derive(clap::Subcommand, Debug)]
pub enum Source {
    /// Not available in this build yet (tracked in issue 2).
    Pending,
}

/// Entry point of `vigil record`.
pub fn main(_cmd: Source) -> anyhow::Result<()> {
    anyhow::bail!("`vigil record` is not available in this build yet (tracked in issue 2)")
}
