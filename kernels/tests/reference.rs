//! `cpu-ref` against floating-point references, within documented tolerances.
//!
//! * Preprocess: the fixed-point bilinear resize is within 1 grey level of the exact float
//!   bilinear (half-pixel centres): coordinates are rounded to 1/256 pixel (at most 1/512
//!   off on each axis, so at most 255/512 levels each) and the result rounded once, so the
//!   bound is 1.5 levels; each LUT entry is within half a quantisation step of the
//!   float normalisation (unless clamped).
//! * Add / Concat rescale: within 1 LSB of the float result (gemmlowp rounds twice).
//! * Decode: on heatmaps without ties, the integer peak set and order equal the float
//!   CenterNet decode (`maxpool3x3(h) == h`, threshold, top-K by score), and boxes match the
//!   float formulas.

use kernels::backend::Backend;
use kernels::cpu_ref::{self, CpuRef};
use kernels::plan::{AddParams, Candidates, Encoding, Preprocess, Rescale};
use kernels::synth::{random_frame, random_plan};
use proptest::prelude::*;

fn float_bilinear(frame: &[u8], sw: usize, sh: usize, dh: usize, dw: usize, y: usize, x: usize, c: usize) -> f64 {
    let coord = |i: usize, src: usize, dst: usize| {
        let s = ((i as f64 + 0.5) * src as f64 / dst as f64 - 0.5).clamp(0.0, (src - 1) as f64);
        let i0 = s.floor() as usize;
        (i0, (i0 + 1).min(src - 1), s - i0 as f64)
    };
    let (y0, y1, fy) = coord(y, sh, dh);
    let (x0, x1, fx) = coord(x, sw, dw);
    let p = |yy: usize, xx: usize| f64::from(frame[(yy * sw + xx) * 3 + c]);
    let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
    let bot = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
    top * (1.0 - fy) + bot * fy
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn resize_is_within_one_and_a_half_levels_of_float_bilinear(sw in 1usize..60, sh in 1usize..60, dw in 1usize..50, dh in 1usize..50, seed in any::<u64>()) {
        let mut frame = vec![0u8; sw * sh * 3];
        let mut s = seed | 1;
        for b in &mut frame {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            *b = (s >> 24) as u8;
        }
        for y in 0..dh {
            for x in 0..dw {
                for c in 0..3 {
                    let got = f64::from(cpu_ref::resize_pixel(&frame, sw, sh, dh, dw, y, x, c));
                    let want = float_bilinear(&frame, sw, sh, dh, dw, y, x, c);
                    prop_assert!((got - want).abs() <= 1.5, "({y},{x},{c}) {sw}x{sh}->{dw}x{dh}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn normalise_table_is_within_half_a_step(scale in 0.005f32..0.1, zp in -30i32..30) {
        let mean = [0.485f32, 0.456, 0.406];
        let std = [0.229f32, 0.224, 0.225];
        let p = Preprocess::normalise(4, 4, mean, std, scale, zp);
        for c in 0..3 {
            for v in 0..256usize {
                let real = (v as f64 / 255.0 - f64::from(mean[c])) / f64::from(std[c]);
                let q = i32::from(p.lut[c][v]);
                let deq = f64::from(scale) * f64::from(q - zp);
                let clamped = q == -128 || q == 127;
                prop_assert!(clamped || (deq - real).abs() <= f64::from(scale) * 0.5 + 1e-9, "c {c} v {v}: {deq} vs {real}");
            }
        }
    }

    #[test]
    fn add_is_within_one_lsb_of_float(sa in 0.005f32..0.2, sb in 0.005f32..0.2, so in 0.01f32..0.3, za in -20i32..20, zb in -20i32..20, zo in -20i32..20, a in any::<i8>(), b in any::<i8>()) {
        let p = AddParams::new(sa, sb, so, -128, 127);
        let got = i32::from(cpu_ref::add_one(&p, a, za, b, zb, zo));
        let real = f64::from(sa) * f64::from(i32::from(a) - za) + f64::from(sb) * f64::from(i32::from(b) - zb);
        let want = (real / f64::from(so) + f64::from(zo)).clamp(-128.0, 127.0);
        prop_assert!((f64::from(got) - want).abs() <= 1.0, "{got} vs {want}");
    }

    #[test]
    fn rescale_is_within_one_lsb_of_float(si in 0.005f32..0.2, so in 0.005f32..0.2, zi in -20i32..20, zo in -20i32..20, x in any::<i8>()) {
        let r = Rescale::new(si, zi, so);
        let got = i32::from(cpu_ref::rescale_one(&r, x, zo));
        let want = (f64::from(si) * f64::from(i32::from(x) - zi) / f64::from(so) + f64::from(zo)).clamp(-128.0, 127.0);
        // gemmlowp rounds twice (high multiply, then shift), so up to 1 LSB, not 0.5.
        prop_assert!((f64::from(got) - want).abs() <= 1.0, "{got} vs {want}");
    }

    /// Integer decode equals the float CenterNet decode on tie-free heatmaps.
    #[test]
    fn decode_matches_float_centernet(seed in any::<u64>()) {
        let plan = random_plan(seed);
        let mut arena = vec![0i8; plan.arena_bytes as usize];
        let hm = plan.tensor(plan.heads.heatmap).clone();
        let (h, w, c) = (hm.h as usize, hm.w as usize, hm.c as usize);
        // Noise everywhere, then a heatmap whose values are distinct inside every 3x3 window
        // of a channel: v = 9 r + 3 (y mod 3) + (x mod 3) with random r, so no plateau.
        let cells = h * w * c;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        for b in arena.iter_mut() { *b = next() as i8; }
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = 9 * (next() % 28) as i32 + 3 * (y % 3) as i32 + (x % 3) as i32;
                    arena[hm.offset as usize + (y * w + x) * c + ch] = (v - 128) as i8;
                }
            }
        }
        let mut scratch = Vec::with_capacity(cells);
        let mut out = Candidates::with_capacity(plan.heads.max_candidates as usize);
        cpu_ref::decode_peaks(&plan, &arena, &mut scratch, &mut out);

        // Float reference: dequantise, 3x3 max pool, equality, threshold, sort by score.
        let deq = |q: i8| f64::from(hm.scale) * f64::from(i32::from(q) - hm.zero_point);
        let at = |cl: usize, y: usize, x: usize| deq(arena[hm.offset as usize + (y * w + x) * c + cl]);
        let thr = deq(plan.heads.threshold);
        let mut want = Vec::new();
        let mut tie = false;
        for cl in 0..plan.heads.num_classes as usize {
            for y in 0..h {
                for x in 0..w {
                    let v = at(cl, y, x);
                    let mut m = f64::MIN;
                    for ny in y.saturating_sub(1)..(y + 2).min(h) {
                        for nx in x.saturating_sub(1)..(x + 2).min(w) {
                            if (ny, nx) != (y, x) {
                                tie |= at(cl, ny, nx) == v;
                                m = m.max(at(cl, ny, nx));
                            }
                        }
                    }
                    if v >= m && v >= thr {
                        want.push((v, cl, y, x));
                    }
                }
            }
        }
        prop_assume!(!tie, "heatmap has a plateau; the float decode is ambiguous there");
        want.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3))));
        want.truncate(plan.heads.max_candidates as usize);
        let got: Vec<(usize, usize, usize)> = out.as_slice().iter().map(|k| (usize::from(k.class), usize::from(k.y), usize::from(k.x))).collect();
        let want_ids: Vec<(usize, usize, usize)> = want.iter().map(|k| (k.1, k.2, k.3)).collect();
        prop_assert_eq!(got, want_ids);

        // Boxes: float formulas on the dequantised head values.
        let hs = &plan.heads;
        for k in out.as_slice() {
            let d = hs.decode(&plan, k);
            let reg = plan.tensor(hs.offset[0].tensor);
            let val = |ch: u32| {
                let q = arena[reg.offset as usize + (usize::from(k.y) * reg.w as usize + usize::from(k.x)) * reg.c as usize + ch as usize];
                f64::from(reg.scale) * f64::from(i32::from(q) - reg.zero_point)
            };
            let stride = f64::from(hs.stride);
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-4 * (1.0 + b.abs());
            prop_assert!(close(d.cx, (f64::from(k.x) + val(0)) * stride));
            prop_assert!(close(d.cy, (f64::from(k.y) + val(1)) * stride));
            prop_assert!(close(d.w, val(2).exp() * stride));
            prop_assert!(close(d.h, val(3).exp() * stride));
            prop_assert!(close(d.depth, val(4).exp()));
            prop_assert!(close(d.score, deq(k.score)));
        }
    }
}

#[test]
fn plateaus_resolve_to_their_first_cell() {
    // A 2x3 plateau of equal values yields one peak, at its first cell in raster order.
    let (h, w) = (4, 5);
    let mut hm = vec![-50i8; h * w];
    for y in 1..3 {
        for x in 1..4 {
            hm[y * w + x] = 10;
        }
    }
    let peaks: Vec<(usize, usize)> = (0..h).flat_map(|y| (0..w).map(move |x| (y, x))).filter(|&(y, x)| cpu_ref::is_peak(&hm, h, w, 1, 0, y, x, 0)).collect();
    assert_eq!(peaks, vec![(1, 1)]);
}

#[test]
fn sigmoid_encoding_decodes_logits() {
    assert!((Encoding::Sigmoid.apply(0.0) - 0.5).abs() < 1e-6);
    assert!((Encoding::Log { unit: 4.0 }.apply(0.0) - 4.0).abs() < 1e-6);
}

#[test]
fn cpu_ref_backend_is_deterministic_and_checks_arguments() {
    let plan = random_plan(7);
    let mut be = CpuRef;
    let mut p = be.prepare(&plan, 2).unwrap();
    let f1 = random_frame(&plan, 1);
    let f2 = random_frame(&plan, 2);
    let mut out = vec![Candidates::with_capacity(plan.heads.max_candidates as usize); 2];
    be.run(&mut p, &[&f1, &f2], &mut out).unwrap();
    let first = out.clone();
    be.run(&mut p, &[&f1, &f2], &mut out).unwrap();
    assert_eq!(first, out);
    let short = vec![0u8; 5];
    let err = be.run(&mut p, &[&short], &mut out).unwrap_err().to_string();
    assert!(err.contains("frame 0 has 5 bytes"), "{err}");
    let err = be.run(&mut p, &[&f1, &f1, &f1], &mut out).unwrap_err().to_string();
    assert!(err.contains("exceeds the prepared maximum 2"), "{err}");
}
