//! Exports frames of the synthetic rig as a training / evaluation data set.
//!
//! ```text
//! cargo run --release -p kernels --example export_dataset -- --seed 1 --frames 200 --every 3 --out tools/data/train
//! ```
//!
//! Layout (read by `tools/dataset.py`): `OUT/index.jsonl` with one JSON object per image
//! (`image`, `frame`, `camera`, `width`, `height`, `objects: [{class, bbox, depth,
//! visible_fraction}]`) and one `OUT/<frame>_c<camera>.npy` per image (uint8, H x W x 3, RGB).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rig::{Rig, SyntheticRig};

struct Opts {
    seed: u64,
    frames: u64,
    every: u64,
    fps: f64,
    cameras: Option<Vec<usize>>,
    out: PathBuf,
}

fn usage() -> String {
    "usage: export_dataset --out DIR [--seed N] [--frames N] [--every N] [--fps F] [--cameras 0,1,..]".to_string()
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts { seed: 1, frames: 100, every: 1, fps: 30.0, cameras: None, out: PathBuf::new() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value\n{}", usage()));
        match a.as_str() {
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--frames" => o.frames = val()?.parse().map_err(|e| format!("--frames: {e}"))?,
            "--every" => o.every = val()?.parse::<u64>().map_err(|e| format!("--every: {e}"))?.max(1),
            "--fps" => o.fps = val()?.parse().map_err(|e| format!("--fps: {e}"))?,
            "--cameras" => {
                let v = val()?;
                let cams = v
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().map_err(|e| format!("--cameras {v:?}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                o.cameras = Some(cams);
            }
            "--out" => o.out = PathBuf::from(val()?),
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if o.out.as_os_str().is_empty() {
        return Err(format!("--out is required\n{}", usage()));
    }
    Ok(o)
}

fn write_npy(path: &Path, data: &[u8], h: u32, w: u32) -> std::io::Result<()> {
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({h}, {w}, 3), }}");
    // Magic (6) + version (2) + header length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut f = BufWriter::new(fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(data)?;
    f.flush()
}

fn run(o: &Opts) -> Result<(), String> {
    fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let rig = Rig::builtin();
    let cams: Vec<usize> = o.cameras.clone().unwrap_or_else(|| (0..rig.cameras().len()).collect());
    if let Some(bad) = cams.iter().find(|&&c| c >= rig.cameras().len()) {
        return Err(format!("--cameras: camera {bad} is not in the rig ({} cameras)", rig.cameras().len()));
    }
    let dims: Vec<(u32, u32)> = rig.cameras().iter().map(|c| (c.width, c.height)).collect();
    let mut world = SyntheticRig::new(rig, o.seed, o.fps);
    let mut images = vec![Vec::new(); dims.len()];
    let index_path = o.out.join("index.jsonl");
    let mut index = BufWriter::new(fs::File::create(&index_path).map_err(|e| format!("{}: {e}", index_path.display()))?);
    let mut written = 0usize;
    for _ in 0..o.frames {
        let mut truth = world.next_frame(&mut images);
        for _ in 1..o.every {
            truth = world.next_frame(&mut images);
        }
        for &cam in &cams {
            let (w, h) = dims[cam];
            let name = format!("{:06}_c{cam}.npy", truth.frame);
            let path = o.out.join(&name);
            write_npy(&path, &images[cam], h, w).map_err(|e| format!("{}: {e}", path.display()))?;
            let objects: Vec<serde_json::Value> = truth
                .objects
                .iter()
                .flat_map(|obj| {
                    obj.boxes.iter().filter(|b| usize::from(b.camera) == cam).map(move |b| {
                        serde_json::json!({
                            "class": obj.class as u8,
                            "bbox": b.bbox,
                            "depth": b.depth,
                            "visible_fraction": b.visible_fraction,
                            "id": obj.id,
                        })
                    })
                })
                .collect();
            let rec = serde_json::json!({
                "image": name, "frame": truth.frame, "camera": cam, "width": w, "height": h, "objects": objects,
            });
            writeln!(index, "{rec}").map_err(|e| format!("{}: {e}", index_path.display()))?;
            written += 1;
        }
    }
    index.flush().map_err(|e| format!("{}: {e}", index_path.display()))?;
    println!("wrote {written} images to {}", o.out.display());
    Ok(())
}

fn main() {
    let result = parse().and_then(|o| run(&o));
    if let Err(e) = result {
        eprintln!("export_dataset: {e}");
        std::process::exit(2);
    }
}
