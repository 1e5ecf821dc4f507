//! `vigil replay`: drive the camera sources from a recording and report on it.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use pipeline::passthrough::Pace;
use pipeline::replay::{replay, ReplayOptions};

/// Clock to replay on.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Rate {
    /// At the recorded capture times, on the real clock.
    Recorded,
    /// As fast as possible, on a virtual clock (reproducible).
    Max,
}

/// Arguments of `vigil replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The MCAP recording (vigil's own, or any MCAP with the same Foxglove schemas).
    file: PathBuf,
    /// Replay rate.
    #[arg(long, value_enum, default_value_t = Rate::Max)]
    rate: Rate,
    /// Write what the pipeline stage saw to this MCAP file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Most memory for pre-decoded frames, MiB.
    #[arg(long, default_value_t = 4096)]
    max_frame_memory_mib: u64,
}

/// Entry point of `vigil replay`.
pub fn main(args: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("checking and decoding {}", args.file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let opts = ReplayOptions {
        pace: match args.rate {
            Rate::Recorded => Pace::Recorded,
            Rate::Max => Pace::Max,
        },
        max_decoded_bytes: args.max_frame_memory_mib.saturating_mul(1 << 20),
    };
    let report = replay(&bytes, &opts);
    spinner.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(out) = &args.out {
        report.write_mcap(out).map_err(anyhow::Error::msg)?;
        eprintln!("wrote {} ({} staged frames)", out.display(), report.staged.len());
    }
    let file = args.file.display();
    if let Some(first) = report.problems.first() {
        bail!("{file}: {} problem(s) in the recording; first at {first}", report.problems.len());
    }
    if report.budget_exceeded {
        bail!("{file}: decoded frames exceed --max-frame-memory-mib {}; raise it", args.max_frame_memory_mib);
    }
    if !report.complete {
        bail!("{file}: the recording is incomplete");
    }
    if report.cameras.is_empty() {
        bail!("{file}: no camera image channel (foxglove.RawImage or foxglove.CompressedImage) in the recording");
    }
    Ok(())
}
