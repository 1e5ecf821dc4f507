//! `vigil record`: write recordings (MCAP) from a source.

use std::path::PathBuf;

use anyhow::Context as _;
use pipeline::record::{record_synthetic, ImageEncoding, RecordOptions};

/// Subcommands of `vigil record`.
#[derive(clap::Subcommand, Debug)]
pub enum Source {
    /// Record the deterministic synthetic world through the built-in 8-camera rig.
    ///
    /// Same arguments, same bytes: the file is reproducible bit for bit.
    Synthetic(SyntheticArgs),
}

/// How images are stored in the recording.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Images {
    /// foxglove.CompressedImage, PNG (lossless).
    Png,
    /// foxglove.CompressedImage, JPEG quality 90 (lossy, smallest).
    Jpeg,
    /// foxglove.RawImage, rgb8 (largest).
    Raw,
}

/// Arguments of `vigil record synthetic`.
#[derive(clap::Args, Debug)]
pub struct SyntheticArgs {
    /// Output MCAP file (written as FILE.partial, renamed when complete).
    #[arg(long)]
    out: PathBuf,
    /// Length of the recording, seconds.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// World seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames per second of every camera.
    #[arg(long, default_value_t = 36.0)]
    fps: f64,
    /// Cameras to record, comma-separated names (default: all eight).
    #[arg(long, value_delimiter = ',')]
    cameras: Vec<String>,
    /// Image storage.
    #[arg(long, value_enum, default_value_t = Images::Png)]
    images: Images,
}

/// Entry point of `vigil record`.
pub fn main(cmd: Source) -> anyhow::Result<()> {
    let Source::Synthetic(a) = cmd;
    let opts = RecordOptions {
        seconds: a.seconds,
        seed: a.seed,
        fps: a.fps,
        cameras: a.cameras,
        images: match a.images {
            Images::Png => ImageEncoding::Png,
            Images::Jpeg => ImageEncoding::Jpeg,
            Images::Raw => ImageEncoding::Raw,
        },
    };
    let rig = rig::calib::Rig::builtin();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} frames, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("recording");
    let summary = record_synthetic(&rig, &opts, &a.out, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let summary = summary.with_context(|| format!("recording {}", a.out.display()))?;
    eprintln!(
        "wrote {}: {} frames x {} cameras, {} messages, {:.1} MiB",
        a.out.display(),
        summary.frames,
        summary.cameras,
        summary.messages,
        summary.bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
