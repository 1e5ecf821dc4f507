//! The fast `cpu` backend equals `cpu-ref` byte for byte: every tensor of the arena and every
//! candidate, on random whole plans, on single convolutions over random geometry and on the
//! committed model plans over the committed held-out frames; with every instruction set the
//! machine has (AVX-512 VNNI, AVX2, portable), on 1, 2 and 3 threads.

use kernels::backend::Backend;
use kernels::cpu::{Cpu, Isa};
use kernels::cpu_ref::CpuRef;
use kernels::ir::{ConvGeom, QConv};
use kernels::plan::{Candidates, ChannelRef, Encoding, HeadSpec, Plan, PlanBuilder, PlanMeta, Preprocess, Tier};
use kernels::quant::Requant;
use kernels::synth::{centernet_lite, random_frame, random_plan};
use proptest::prelude::*;

fn assert_same(plan: &Plan, frames: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let k = plan.heads.max_candidates as usize;
    let mut reference = CpuRef;
    let mut rp = reference.prepare(plan, frames.len()).unwrap();
    let mut want = vec![Candidates::with_capacity(k); frames.len()];
    reference.run(&mut rp, &refs, &mut want).unwrap();
    for mut be in [Cpu::new(1), Cpu::new(3), Cpu::with_isa(2, Isa::Avx2), Cpu::portable(2)] {
        let mut p = be.prepare(plan, frames.len()).unwrap();
        let mut got = vec![Candidates::with_capacity(k); frames.len()];
        be.run(&mut p, &refs, &mut got).unwrap();
        for t in &plan.tensors {
            prop_assert!(p.arena()[t.range()] == rp.arena()[t.range()], "tensor {} differs ({:?}, {} threads)", t.name, be.isa(), p.threads());
        }
        prop_assert_eq!(&got, &want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_plans_match_the_reference(seed in any::<u64>()) {
        let plan = random_plan(seed);
        let frames = [random_frame(&plan, seed ^ 1), random_frame(&plan, seed ^ 2)];
        assert_same(&plan, &frames)?;
    }

    #[test]
    fn single_convs_match_the_reference(
        in_c in 1usize..24, groups_pick in 0usize..3, mult in 1usize..3, k in 1usize..6, stride in 1usize..4,
        pads in prop::array::uniform4(0usize..5), h in 1usize..18, w in 1usize..18, lo in -128i32..0, hi in 0i32..128,
        big in any::<bool>(), seed in any::<u64>(),
    ) {
        let groups = match groups_pick { 0 => 1, 1 => in_c, _ => (1..in_c).rev().find(|d| in_c.is_multiple_of(*d)).unwrap_or(1) };
        let out_c = groups * mult * if groups == in_c { 1 } else { 2 };
        let pad = pads.map(|p| p.min(k - 1));
        prop_assume!(h + pad[0] + pad[2] >= k && w + pad[1] + pad[3] >= k);
        let plan = single_conv_plan(in_c, out_c, k, stride, pad, groups, h, w, lo as i8, hi as i8, big, seed);
        let frames = [random_frame(&plan, seed)];
        assert_same(&plan, &frames)?;
    }
}

/// input -> 1x1 conv to `in_c` -> the conv under test; the heads read its channel 0.
fn single_conv_plan(in_c: usize, out_c: usize, k: usize, stride: usize, pad: [usize; 4], groups: usize, h: usize, w: usize, lo: i8, hi: i8, big: bool, seed: u64) -> Plan {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut b = PlanBuilder::new();
    let x = b.tensor("x", h as u32, w as u32, 3, 0.02, 3);
    let y = b.tensor("y", h as u32, w as u32, in_c as u32, 0.05, -7);
    let geom = ConvGeom { in_c, out_c, kh: k, kw: k, stride_h: stride, stride_w: stride, pad, groups };
    let (oh, ow) = geom.out_hw(h, w);
    let z = b.tensor("z", oh as u32, ow as u32, out_c as u32, 0.1, 5);
    let mut rnd_w = |n: usize| (0..n).map(|_| (next() % 256) as i32 as i8).collect::<Vec<i8>>();
    let w1 = rnd_w(in_c * 3);
    let w2 = rnd_w(out_c * k * k * in_c / groups);
    let rq = |n: usize, m: f64| vec![Requant::from_real(m); n];
    let first = QConv { geom: ConvGeom { in_c: 3, out_c: in_c, kh: 1, kw: 1, stride_h: 1, stride_w: 1, pad: [0; 4], groups: 1 }, weights: w1, bias: vec![100; in_c], requant: rq(in_c, 0.004), input_zp: 3, output_zp: -7, act_min: -128, act_max: 127 };
    // `big` multipliers saturate most outputs and exercise the positive-shift path.
    let m = if big { 3.5 } else { 0.5 / (k * k * in_c / groups) as f64 / 32.0 };
    let second = QConv { geom, weights: w2, bias: (0..out_c as i32).map(|i| i * 37 - 500).collect(), requant: rq(out_c, m), input_zp: -7, output_zp: 5, act_min: lo, act_max: hi };
    b.conv(x, y, &first);
    b.conv(y, z, &second);
    let c0 = ChannelRef { tensor: z, channel: 0 };
    let heads = HeadSpec {
        heatmap: z,
        heatmap_channel: 0,
        num_classes: 1,
        offset: [c0; 2],
        size: [c0; 2],
        depth: c0,
        stride: 4,
        threshold: -20,
        max_candidates: 16,
        score_enc: Encoding::Sigmoid,
        offset_enc: Encoding::Linear { unit: 1.0 },
        size_enc: Encoding::Log { unit: 4.0 },
        depth_enc: Encoding::Log { unit: 1.0 },
    };
    let meta = PlanMeta { variant: "single-conv".into(), tier: Tier::Full, model_version: 0, ops_per_frame: 0, latency_us: 0, energy_mj: 0.0 };
    b.finish(meta, x, Preprocess::normalise(23, 17, [0.5; 3], [0.25; 3], 0.02, 3), heads).unwrap()
}

#[test]
fn centernet_lite_matches_the_reference_on_real_sized_tensors() {
    let plan = centernet_lite(96, 160, 5).unwrap();
    let frames = [random_frame(&plan, 1)];
    assert_same(&plan, &frames).unwrap();
}

/// The committed `full`, `lite` and `floor` plans on the committed held-out rig frames: every
/// arena tensor and every candidate of every instruction-set path equals `cpu-ref`.
#[test]
fn committed_plans_match_the_reference_on_held_out_frames() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let heldout = root.join("models/heldout");
    let data = kernels::eval::load_dataset(&heldout, None).unwrap();
    let best = Isa::detect();
    let mut isas = vec![Isa::Portable];
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa <= best {
            isas.push(isa);
        } else {
            eprintln!("skipped for {isa:?}: this CPU does not have it (best is {best:?}); that path is checked only on a machine that has it");
        }
    }
    // cpu-ref is the slow scalar oracle: a few frames per plan keep the test short.
    for (name, frames) in [("full", 2), ("lite", 4), ("floor", 4)] {
        let plan = kernels::vplan::load(&root.join(format!("models/{name}.vplan"))).unwrap();
        let (sw, sh) = (plan.preprocess.src_w, plan.preprocess.src_h);
        let picked: Vec<&[u8]> = data.iter().filter(|d| d.size == (sw, sh)).take(frames).map(|d| d.rgb.as_slice()).collect();
        assert!(!picked.is_empty(), "{name}: no held-out frame of {sw}x{sh}");
        let k = plan.heads.max_candidates as usize;
        let mut reference = CpuRef;
        for frame in &picked {
            let mut rp = reference.prepare(&plan, 1).unwrap();
            let mut want = [Candidates::with_capacity(k)];
            reference.run(&mut rp, &[frame], &mut want).unwrap();
            assert!(!want[0].as_slice().is_empty(), "{name}: the reference found no candidate, the comparison would be weak");
            for &isa in &isas {
                for threads in [1, 2] {
                    let mut be = Cpu::with_isa(threads, isa);
                    let mut p = be.prepare(&plan, 1).unwrap();
                    let mut got = [Candidates::with_capacity(k)];
                    be.run(&mut p, &[frame], &mut got).unwrap();
                    for t in &plan.tensors {
                        assert!(p.arena()[t.range()] == rp.arena()[t.range()], "{name}: tensor {} differs ({isa:?}, {threads} threads)", t.name);
                    }
                    assert_eq!(got, want, "{name}: candidates differ ({isa:?}, {threads} threads)");
                }
            }
        }
    }
}
