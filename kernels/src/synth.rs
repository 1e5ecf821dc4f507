//! Synthetic plans for tests and benchmarks: random plans over every op, and a
//! CenterNet-lite shaped plan with random weights.
//!
//! Every backend's byte-equality suite runs on [`random_plan`]; the benches and the
//! throughput comparison run on [`centernet_lite`]. Both are deterministic in their seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ir::{ConvGeom, QConv};
use crate::plan::{AddParams, ChannelRef, Encoding, HeadSpec, Op, Plan, PlanBuilder, PlanError, PlanMeta, Preprocess, Rescale, TensorId, Tier};
use crate::quant::Requant;

/// Builder helpers shared by the generators: tracks the current tensor's shape.
struct Gen {
    b: PlanBuilder,
    rng: ChaCha8Rng,
    ops: u64,
    n: usize,
}

#[derive(Clone, Copy)]
struct T {
    id: TensorId,
    h: u32,
    w: u32,
    c: u32,
}

impl Gen {
    fn tensor(&mut self, h: u32, w: u32, c: u32) -> T {
        let scale = self.rng.random_range(0.01f32..0.1);
        let zp = self.rng.random_range(-20..=20);
        self.n += 1;
        let id = self.b.tensor(format!("t{}", self.n), h, w, c, scale, zp);
        T { id, h, w, c }
    }

    /// A random fused conv from `x`; `relu` clamps at the output zero point.
    fn conv(&mut self, x: T, out_c: u32, k: u32, stride: u32, pad: u32, groups: u32, relu: bool) -> T {
        let geom = ConvGeom {
            in_c: x.c as usize,
            out_c: out_c as usize,
            kh: k as usize,
            kw: k as usize,
            stride_h: stride as usize,
            stride_w: stride as usize,
            pad: [pad as usize; 4],
            groups: groups as usize,
        };
        let (oh, ow) = geom.out_hw(x.h as usize, x.w as usize);
        let y = self.tensor(oh as u32, ow as u32, out_c);
        let depth = (k * k * x.c / groups) as usize;
        let weights: Vec<i8> = (0..out_c as usize * depth).map(|_| self.rng.random_range(-127..=127)).collect();
        let bias: Vec<i32> = (0..out_c).map(|_| self.rng.random_range(-4000..=4000)).collect();
        // Scale so that typical accumulators land inside int8, with the occasional multiplier
        // above one (positive shift) to exercise both requant paths.
        let typical = (depth as f64).sqrt() * 60.0 * 70.0;
        let requant: Vec<Requant> = (0..out_c)
            .map(|_| {
                let m = if self.rng.random_range(0..8) == 0 { self.rng.random_range(1.0..3.0) } else { 60.0 / typical * self.rng.random_range(0.3..3.0) };
                Requant::from_real(m)
            })
            .collect();
        let out_zp = self.b.desc(y.id).zero_point;
        let (act_min, act_max) = if relu { (out_zp as i8, 127) } else if self.rng.random_range(0..4) == 0 { (-100, 100) } else { (-128, 127) };
        let in_zp = self.b.desc(x.id).zero_point;
        let q = QConv { geom, weights, bias, requant, input_zp: in_zp, output_zp: out_zp, act_min, act_max };
        self.b.conv(x.id, y.id, &q);
        self.ops += 2 * (oh * ow) as u64 * out_c as u64 * depth as u64;
        y
    }

    fn maxpool(&mut self, x: T, k: u32, stride: u32, pad: u32) -> T {
        let oh = (x.h + 2 * pad - k) / stride + 1;
        let ow = (x.w + 2 * pad - k) / stride + 1;
        let d = self.b.desc(x.id).clone();
        let id = self.b.tensor(format!("pool{}", self.n), oh, ow, x.c, d.scale, d.zero_point);
        self.b.op(Op::MaxPool { input: x.id, output: id, kh: k, kw: k, stride_h: stride, stride_w: stride, pad: [pad; 4] });
        T { id, h: oh, w: ow, c: x.c }
    }

    fn add(&mut self, a: T, b: T) -> T {
        let y = self.tensor(a.h, a.w, a.c);
        let (sa, sb, so) = (self.b.desc(a.id).scale, self.b.desc(b.id).scale, self.b.desc(y.id).scale);
        let zp = self.b.desc(y.id).zero_point;
        let (lo, hi) = if self.rng.random_range(0..2) == 0 { (zp as i8, 127) } else { (-128, 127) };
        self.b.op(Op::Add { a: a.id, b: b.id, output: y.id, params: AddParams::new(sa, sb, so, lo, hi) });
        y
    }

    fn concat(&mut self, xs: &[T]) -> T {
        let c = xs.iter().map(|t| t.c).sum();
        let y = self.tensor(xs[0].h, xs[0].w, c);
        let so = self.b.desc(y.id).scale;
        let rescale = xs.iter().map(|t| Rescale::new(self.b.desc(t.id).scale, self.b.desc(t.id).zero_point, so)).collect();
        self.b.op(Op::Concat { inputs: xs.iter().map(|t| t.id).collect(), rescale, output: y.id });
        y
    }

    fn resize2(&mut self, x: T, oh: u32, ow: u32) -> T {
        let d = self.b.desc(x.id).clone();
        self.n += 1;
        let id = self.b.tensor(format!("up{}", self.n), oh, ow, x.c, d.scale, d.zero_point);
        self.b.op(Op::ResizeNearest { input: x.id, output: id });
        T { id, h: oh, w: ow, c: x.c }
    }

    /// A sigmoid table from `x`'s quantisation to an output of scale 1/256, zero point -128.
    fn sigmoid(&mut self, x: T) -> T {
        let d = self.b.desc(x.id).clone();
        self.n += 1;
        let id = self.b.tensor(format!("sig{}", self.n), x.h, x.w, x.c, 1.0 / 256.0, -128);
        let table = sigmoid_table(d.scale, d.zero_point);
        self.b.lut(x.id, id, &table);
        T { id, h: x.h, w: x.w, c: x.c }
    }
}

/// The 256-entry table of `sigmoid(scale * (q - zp))` quantised to scale 1/256, zero point
/// -128 (saturating at 127).
pub fn sigmoid_table(scale: f32, zp: i32) -> [i8; 256] {
    let mut t = [0i8; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let q = i as i32 - 128;
        let r = f64::from(scale) * f64::from(q - zp);
        let s = 1.0 / (1.0 + (-r).exp());
        *e = ((s * 256.0).round() - 128.0).clamp(-128.0, 127.0) as i8;
    }
    t
}

fn heads(hm: T, hm_channel: u32, classes: u32, reg: T, stride: u32, threshold: i8, k: u32) -> HeadSpec {
    HeadSpec {
        heatmap: hm.id,
        heatmap_channel: hm_channel,
        num_classes: classes,
        offset: [ChannelRef { tensor: reg.id, channel: 0 }, ChannelRef { tensor: reg.id, channel: 1 }],
        size: [ChannelRef { tensor: reg.id, channel: 2 }, ChannelRef { tensor: reg.id, channel: 3 }],
        depth: ChannelRef { tensor: reg.id, channel: 4 },
        stride,
        threshold,
        max_candidates: k,
        score_enc: Encoding::Linear { unit: 1.0 },
        offset_enc: Encoding::Linear { unit: 1.0 },
        size_enc: Encoding::Log { unit: stride as f32 },
        depth_enc: Encoding::Log { unit: 1.0 },
    }
}

fn meta(variant: &str, tier: Tier, ops: u64) -> PlanMeta {
    PlanMeta { variant: variant.into(), tier, model_version: 1, ops_per_frame: ops, latency_us: 0, energy_mj: 0.0 }
}

/// A random small plan exercising every op kind, grouped and depthwise convs, strides,
/// paddings, clamps, and multipliers above and below one. Deterministic in `seed`.
pub fn random_plan(seed: u64) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let h = rng.random_range(6..=20);
    let w = rng.random_range(6..=20);
    let src_w = rng.random_range(4..=48);
    let src_h = rng.random_range(4..=48);
    let mut g = Gen { b: PlanBuilder::new(), rng, ops: 0, n: 0 };
    let input = g.tensor(h, w, 3);
    let pre = {
        let d = g.b.desc(input.id);
        Preprocess::normalise(src_w, src_h, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], d.scale.max(0.02), d.zero_point)
    };
    let mut x = input;
    let steps = g.rng.random_range(1..=5);
    for _ in 0..steps {
        let choice = g.rng.random_range(0..8);
        x = match choice {
            0 | 1 => {
                let k = [1, 3, 5][g.rng.random_range(0..3)];
                let k = if k <= x.h.min(x.w) { k } else { 1 };
                let stride = if x.h >= 2 * k && x.w >= 2 * k { g.rng.random_range(1..=2) } else { 1 };
                let pad = g.rng.random_range(0..k);
                let out_c = g.rng.random_range(1..=20);
                let relu = g.rng.random_range(0..2) == 0;
                g.conv(x, out_c, k, stride, pad, 1, relu)
            }
            2 => {
                // Depthwise or grouped.
                let groups = if g.rng.random_range(0..2) == 0 { x.c } else { (1..=x.c).rev().find(|d| x.c.is_multiple_of(*d)).unwrap_or(1) };
                let mult = g.rng.random_range(1..=2);
                let k = [3, 5][g.rng.random_range(0..2)];
                let pad = g.rng.random_range(0..k).min(k / 2 + 1);
                if x.h + 2 * pad < k || x.w + 2 * pad < k {
                    x
                } else {
                    g.conv(x, groups * mult * (x.c / groups), k, 1, pad, groups, false)
                }
            }
            3 if x.h >= 4 && x.w >= 4 => {
                let k = g.rng.random_range(2..=3);
                let stride = g.rng.random_range(1..=2);
                let pad = g.rng.random_range(0..k);
                g.maxpool(x, k, stride, pad)
            }
            4 => {
                let y = g.conv(x, x.c, 3, 1, 1, 1, false);
                g.add(x, y)
            }
            5 => {
                let c = g.rng.random_range(1..=8);
                let y = g.conv(x, c, 1, 1, 0, 1, true);
                g.concat(&[x, y])
            }
            6 if x.h * x.w <= 256 => {
                let (fh, fw) = (g.rng.random_range(1..=2), g.rng.random_range(1..=3));
                g.resize2(x, x.h * fh, x.w * fw)
            }
            _ => {
                let mut table = [0i8; 256];
                for e in &mut table {
                    *e = g.rng.random_range(-128..=127);
                }
                let d = g.b.desc(x.id).clone();
                g.n += 1;
                let id = g.b.tensor(format!("lut{}", g.n), x.h, x.w, x.c, d.scale, d.zero_point);
                g.b.lut(x.id, id, &table);
                T { id, ..x }
            }
        };
    }
    let classes = g.rng.random_range(1..=4);
    let logits = g.conv(x, classes, 3, 1, 1, 1, false);
    let hm = g.sigmoid(logits);
    let reg = g.conv(x, 5, 1, 1, 0, 1, false);
    let threshold = g.rng.random_range(-128..=40);
    let k = g.rng.random_range(1..=40);
    let spec = heads(hm, 0, classes, reg, 4, threshold, k);
    let ops = g.ops;
    g.b.finish(meta("random", Tier::Full, ops), input.id, pre, spec).expect("random plans are valid by construction")
}

/// A CenterNet-lite shaped detector with random weights, for an `h x w` input (multiples of
/// 32) and a 1280x720 camera: stride-2 backbone to 1/32, two upsample+concat stages back to
/// 1/4, a depthwise residual block, a 3-class sigmoid heatmap and a 5-channel regression
/// head (offset x/y, log size w/h, log depth). About 0.4 M parameters.
pub fn centernet_lite(h: u32, w: u32, seed: u64) -> Result<Plan, PlanError> {
    let rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Gen { b: PlanBuilder::new(), rng, ops: 0, n: 0 };
    let input = g.tensor(h, w, 3);
    let pre = {
        let d = g.b.desc(input.id);
        Preprocess::normalise(1280, 720, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], d.scale.max(0.02), d.zero_point)
    };
    let s2 = g.conv(input, 16, 3, 2, 1, 1, true);
    let s4 = g.conv(s2, 32, 3, 2, 1, 1, true);
    let s4 = g.conv(s4, 32, 3, 1, 1, 1, true);
    let s4 = g.conv(s4, 32, 3, 1, 1, 1, true);
    let s8 = g.conv(s4, 64, 3, 2, 1, 1, true);
    let s8 = g.conv(s8, 64, 3, 1, 1, 1, true);
    let dw = g.conv(s8, 64, 3, 1, 1, 64, true);
    let pw = g.conv(dw, 64, 1, 1, 0, 1, false);
    let s8 = g.add(s8, pw);
    let s16 = g.conv(s8, 128, 3, 2, 1, 1, true);
    let s16 = g.conv(s16, 128, 3, 1, 1, 1, true);
    let s32 = g.maxpool(s16, 2, 2, 0);
    let s32 = g.conv(s32, 128, 3, 1, 1, 1, true);
    let up = g.resize2(s32, s16.h, s16.w);
    let cat = g.concat(&[up, s16]);
    let u16_ = g.conv(cat, 64, 1, 1, 0, 1, true);
    let up = g.resize2(u16_, s8.h, s8.w);
    let cat = g.concat(&[up, s8]);
    let u8_ = g.conv(cat, 64, 1, 1, 0, 1, true);
    let u8_ = g.conv(u8_, 64, 3, 1, 1, 1, true);
    let up = g.resize2(u8_, s4.h, s4.w);
    let cat = g.concat(&[up, s4]);
    let u4 = g.conv(cat, 48, 1, 1, 0, 1, true);
    let u4 = g.conv(u4, 48, 3, 1, 1, 1, true);
    let head = g.conv(u4, 32, 3, 1, 1, 1, true);
    let logits = g.conv(head, 3, 1, 1, 0, 1, false);
    let hm = g.sigmoid(logits);
    let reg = g.conv(head, 5, 1, 1, 0, 1, false);
    let spec = heads(hm, 0, 3, reg, 4, 40, 100);
    let ops = g.ops;
    g.b.finish(meta(&format!("centernet-lite-{h}x{w}"), Tier::Full, ops), input.id, pre, spec)
}

/// A deterministic pseudo-random RGB8 frame of the plan's source size.
pub fn random_frame(plan: &Plan, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut f = vec![0u8; plan.preprocess.frame_bytes()];
    rng.fill(&mut f[..]);
    f
}
