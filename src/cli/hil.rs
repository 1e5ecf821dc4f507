//! `vigil hil`.

/// Arguments of `vigil hil`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `vigil hil`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`vigil hil` is not available in this build yet (tracked in issue 5)")
}
