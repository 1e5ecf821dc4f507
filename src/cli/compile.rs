//! `vigil compile`.

/// Arguments of `vigil compile`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `vigil compile`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`vigil compile` is not available in this build yet (tracked in issue 3)")
}
