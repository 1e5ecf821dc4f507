//! Accuracy of the compiled committed model: INT8 mAP@0.5 stays within a documented tolerance
//! of FP32 on held-out frames (same decode rules on both paths; see docs/MODEL.md).
//!
//! Tolerance here: 5 mAP points on the `lite` variant over the 8 committed held-out camera
//! images (`models/heldout`: one frame of the synthetic rig, seed 9000, never trained on)
//! (a handful of frames makes mAP coarse; the 1-point target of the issue is measured by
//! `vigil eval` on a larger held-out set and reported in docs/perf/compiler.md).

use kernels::backend::Backend;
use kernels::compile::{self, standard_variants};
use kernels::cpu::Cpu;
use kernels::eval::{Det, Evaluator, decode_float, load_dataset};
use kernels::fp32::Interpreter;
use kernels::plan::Candidates;
use kernels::quantize::Method;

const TOLERANCE: f64 = 0.05;
/// Below this FP32 mAP the comparison says nothing about quantisation.
const MIN_FP32_MAP: f64 = 0.2;

#[test]
fn int8_lite_map_is_within_tolerance_of_fp32() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let (model, heldout) = (root.join("models/vigil_det.onnx"), root.join("models/heldout"));
    if !model.exists() || !heldout.join("index.jsonl").exists() {
        eprintln!("SKIPPED: {} or {} is missing (tools/train.sh, tools/make_reference.py)", model.display(), heldout.display());
        return;
    }
    let bytes = std::fs::read(&model).unwrap();
    let data = load_dataset(&heldout, None).unwrap();
    assert!(data.len() >= 4, "held-out set too small");
    let camera = data[0].size;
    let g = kernels::onnx::import(&bytes, Default::default()).unwrap();
    let s = g.values[g.input].shape;
    let choice = standard_variants((s.h, s.w), camera).into_iter().find(|v| v.spec.name == "lite").unwrap();

    // Calibrate on the first half, evaluate on all frames.
    let calib: Vec<Vec<u8>> = data[..data.len() / 2].iter().map(|d| d.rgb.clone()).collect();
    let c = compile::compile_variant(&bytes, &choice, &calib, Method::MinMax, &mut |_, _| {}).unwrap();
    let plan = &c.plan;

    let fg = compile::load_graph(&bytes, Some(choice.input_hw)).unwrap();
    let heads = compile::float_heads(&fg, &choice.spec).unwrap();
    let (hm, bx) = (fg.output_named("heatmap").unwrap(), fg.output_named("box").unwrap());
    let interp = Interpreter::new(&fg);
    let mut be = Cpu::new(2);
    let mut prep = be.prepare(plan, 1).unwrap();
    let mut out = [Candidates::with_capacity(plan.heads.max_candidates as usize)];
    let s_in = plan.tensor(plan.input).w as f32 / plan.preprocess.src_w as f32;
    let (mut ef, mut eq) = (Evaluator::new(4), Evaluator::new(4));
    for d in &data {
        let all = interp.run_all(compile::float_input(&d.rgb, d.size, choice.input_hw));
        ef.add(&decode_float(&heads, &all[hm], &all[bx]), &d.gts);
        be.run(&mut prep, &[&d.rgb], &mut out).unwrap();
        let dets: Vec<Det> = out[0].as_slice().iter().map(|c| Det::from_detection(&plan.heads.decode(plan, c), s_in)).collect();
        eq.add(&dets, &d.gts);
    }
    let (rf, rq) = (ef.report(), eq.report());
    eprintln!("lite on {} held-out frames: FP32 mAP@0.5 {:.4} {:?}, INT8 {:.4} {:?}", data.len(), rf.map, rf.ap, rq.map, rq.ap);
    assert!(rf.counted > 0, "held-out frames have no counted box");
    // The committed model is trained: a model that detects nothing would make INT8 and FP32
    // agree trivially, so that is a failure here, not a skip.
    assert!(rf.map >= MIN_FP32_MAP, "the committed model detects too little (FP32 mAP@0.5 {:.4} < {MIN_FP32_MAP}); see docs/MODEL.md", rf.map);
    assert!((rf.map - rq.map).abs() <= TOLERANCE, "INT8 mAP {:.4} vs FP32 {:.4}: beyond {TOLERANCE}", rq.map, rf.map);
}
