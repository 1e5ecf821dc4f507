//! Renders frames of the synthetic rig and writes one PNG per camera, plus the frame's
//! ground truth as JSON and a copy of each image with its boxes drawn.
//!
//! `cargo run -p rig --release --example render_png -- [--seed S] [--frame N] [--out DIR] [--rig FILE]`

use std::path::PathBuf;

use rig::{Rig, SyntheticRig, CAMERA_COUNT};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seed = 7u64;
    let mut frame = 0u64;
    let mut out = PathBuf::from("out/rig");
    let mut rig_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => seed = value()?.parse()?,
            "--frame" => frame = value()?.parse()?,
            "--out" => out = PathBuf::from(value()?),
            "--rig" => rig_path = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let rig = match rig_path {
        Some(p) => Rig::load(p)?,
        None => Rig::builtin(),
    };
    std::fs::create_dir_all(&out)?;
    let mut world = SyntheticRig::new(rig.clone(), seed, 36.0);
    let mut images = vec![Vec::new(); CAMERA_COUNT];
    let mut truth = world.next_frame(&mut images);
    for _ in 0..frame {
        truth = world.next_frame(&mut images);
    }
    for (ci, (cam, img)) in rig.cameras().iter().zip(&images).enumerate() {
        let path = out.join(format!("{}.png", cam.name));
        image::save_buffer(&path, img, cam.width, cam.height, image::ExtendedColorType::Rgb8)?;
        // Boxes: amodal in green, visible part in yellow; colour by class in the corner mark.
        let mut boxed = img.clone();
        for o in &truth.objects {
            for b in o.boxes.iter().filter(|b| b.camera as usize == ci && b.visible_fraction > 0.05) {
                draw_rect(&mut boxed, cam.width as usize, cam.height as usize, b.bbox, [40, 255, 40]);
                draw_rect(&mut boxed, cam.width as usize, cam.height as usize, b.visible_bbox, [255, 230, 0]);
            }
        }
        image::save_buffer(out.join(format!("{}_boxes.png", cam.name)), &boxed, cam.width, cam.height, image::ExtendedColorType::Rgb8)?;
        println!("{}", path.display());
    }
    std::fs::write(out.join("truth.json"), serde_json::to_string_pretty(&truth)?)?;
    let boxes: usize = truth.objects.iter().map(|o| o.boxes.len()).sum();
    println!("frame {} seed {seed}: {} objects, {boxes} boxes -> {}", truth.frame, truth.objects.len(), out.display());
    Ok(())
}

fn draw_rect(img: &mut [u8], w: usize, h: usize, b: [f32; 4], colour: [u8; 3]) {
    let (u0, v0) = (b[0] as usize, b[1] as usize);
    let (u1, v1) = ((b[2] as usize).saturating_sub(1).min(w - 1), (b[3] as usize).saturating_sub(1).min(h - 1));
    let mut put = |u: usize, v: usize| img[(v * w + u) * 3..][..3].copy_from_slice(&colour);
    for u in u0..=u1 {
        put(u, v0);
        put(u, v1);
    }
    for v in v0..=v1 {
        put(u0, v);
        put(u1, v);
    }
}
