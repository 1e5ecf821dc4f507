//! Times the synthetic rig: world step plus rendering of all eight cameras, per frame.
//!
//! `cargo run -p rig --release --example frame_time -- [--frames N] [--seed S]`
//!
//! Prints the mean and percentiles per thread count (1 thread and all cores).

use std::time::Instant;

use rig::{Rig, SyntheticRig, CAMERA_COUNT};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut frames = 36usize;
    let mut seed = 7u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--frames" => frames = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let start = Instant::now();
    let _ = SyntheticRig::new(Rig::builtin(), seed, 36.0);
    println!("set-up (ray tables for 8 cameras): {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let mut counts = vec![1];
    if cores > 1 {
        counts.push(cores);
    }
    for threads in counts {
        let mut world = SyntheticRig::new(Rig::builtin(), seed, 36.0).with_threads(threads)?;
        let mut images = vec![Vec::new(); CAMERA_COUNT];
        world.next_frame(&mut images); // warm-up
        let mut ms = Vec::with_capacity(frames);
        for _ in 0..frames {
            let t = Instant::now();
            let truth = world.next_frame(&mut images);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(truth);
        }
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        println!(
            "threads {threads}: {frames} frames of 8 x 640x384, mean {mean:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms ({:.1} frames/s)",
            pct(0.5),
            pct(0.9),
            pct(1.0),
            1e3 / mean
        );
    }
    Ok(())
}
