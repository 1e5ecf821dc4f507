//! Model plans for the subcommands that run the detector (`vigil replay --deterministic`;
//! `vigil run` keeps its own copy of these two helpers until it switches to this module).

use std::path::Path;

use anyhow::{Context as _, bail};
use kernels::plan::Plan;

/// Loads `*.vplan` from `dir`, ordered full -> lite -> floor; empty when none exist.
pub(crate) fn load_plans(dir: &Path) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(plans) };
    for e in entries {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "vplan") {
            let plan = kernels::vplan::load(&path).with_context(|| format!("loading {}", path.display()))?;
            plans.push(plan);
        }
    }
    // File names break ties, so the order never depends on the directory listing.
    plans.sort_by(|a, b| {
        (a.meta.tier as u32, std::cmp::Reverse(a.meta.ops_per_frame), &a.meta.variant).cmp(&(
            b.meta.tier as u32,
            std::cmp::Reverse(b.meta.ops_per_frame),
            &b.meta.variant,
        ))
    });
    Ok(plans)
}

/// Random-weight CenterNet-lite plans at three input sizes, for a camera of `w x h`.
pub(crate) fn stand_in_plans(w: u32, h: u32) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for (i, (ph, pw)) in [(384, 640), (192, 320), (96, 160)].into_iter().enumerate() {
        let mut p = kernels::synth::centernet_lite(ph, pw, 1).context("building the stand-in plan")?;
        // The tables do not depend on the frame size; only the source geometry changes.
        p.preprocess.src_w = w;
        p.preprocess.src_h = h;
        p.meta.tier = kernels::plan::Tier::from_code(i as u32).unwrap_or(kernels::plan::Tier::Floor);
        plans.push(p);
    }
    Ok(plans)
}

/// The plans of `--model DIR` (or the stand-in when it holds no `.vplan`), checked against the
/// rig's `w x h` cameras, with their model version and a description for logs and metadata.
pub(crate) fn plans_for(dir: &Path, w: u32, h: u32) -> anyhow::Result<(Vec<Plan>, u64, String)> {
    let mut plans = load_plans(dir)?;
    let version = plans.first().map(|p| p.meta.model_version).unwrap_or(0);
    let stand_in = plans.is_empty();
    if stand_in {
        tracing::warn!(
            "no .vplan in {}: running random-weight stand-in plans (detections are noise); compile a model with `vigil compile`",
            dir.display()
        );
        plans = stand_in_plans(w, h)?;
    }
    for p in &plans {
        if p.preprocess.src_w != w || p.preprocess.src_h != h {
            bail!("plan {} expects {}x{} frames but the rig's cameras are {w}x{h}", p.meta.variant, p.preprocess.src_w, p.preprocess.src_h);
        }
    }
    let names: Vec<String> = plans.iter().map(|p| format!("{} ({:.2} GOPs)", p.meta.variant, p.meta.ops_per_frame as f64 / 1e9)).collect();
    let desc = format!("{}{}", if stand_in { "random-weight stand-in: " } else { "" }, names.join(", "));
    Ok((plans, version, desc))
}
