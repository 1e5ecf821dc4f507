//! `vigil replay`.

/// Arguments of `vigil replay`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `vigil replay`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`vigil replay` is not available in this build yet (tracked in issue 2)")
}
