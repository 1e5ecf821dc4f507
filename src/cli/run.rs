//! `vigil run`.

/// Arguments of `vigil run`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `vigil run`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`vigil run` is not available in this build yet (tracked in issue 5)")
}
