//! `vigil eval`.

/// Arguments of `vigil eval`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `vigil eval`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`vigil eval` is not available in this build yet (tracked in issue 3)")
}
