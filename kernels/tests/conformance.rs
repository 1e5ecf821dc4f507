//! One conformance suite, instantiated per backend: every op on random shapes, strides,
//! paddings, groups and quantisation parameters must match `cpu_ref` byte for byte.
//!
//! A backend that cannot run here (no adapter, no CUDA driver) makes each of its tests print
//! why and return; `VIGIL_REQUIRE_WGPU=1` (set by CI) turns a missing wgpu adapter into a
//! failure, and `VIGIL_REQUIRE_CUDA=1` does the same for CUDA.

use kernels::cpu_ref;
use kernels::ir::{ConvGeom, QConv};
use kernels::plan::{Candidates, Plan};
use kernels::quant::Requant;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// What the suite asks of a backend under test.
trait UnderTest {
    /// Runs one fused convolution over `n` NHWC images of `h x w`.
    fn conv(&self, op: &QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Result<Vec<i8>, String>;
    /// Prepares `plan` for `frames.len()` frames and runs them once.
    fn plan(&self, plan: &Plan, frames: &[Vec<u8>]) -> Result<Vec<Candidates>, String>;
}

/// The oracle, over a batch: `cpu_ref::conv` per image.
fn reference_conv(op: &QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Vec<i8> {
    let (oh, ow) = op.geom.out_hw(h, w);
    let per_in = h * w * op.geom.in_c;
    let per_out = oh * ow * op.geom.out_c;
    let mut out = vec![0i8; n * per_out];
    for i in 0..n {
        cpu_ref::conv(op, &input[i * per_in..(i + 1) * per_in], h, w, &mut out[i * per_out..(i + 1) * per_out]);
    }
    out
}

/// A random convolution case: geometry, parameters and input.
#[derive(Debug, Clone)]
struct ConvCase {
    op: QConv,
    n: usize,
    h: usize,
    w: usize,
    input: Vec<i8>,
}

fn requant_strategy() -> impl Strategy<Value = Requant> {
    prop_oneof![
        // Realistic: a real multiplier from 1e-5 to 8.
        (-17.0f64..3.0).prop_map(|e| Requant::from_real(2f64.powf(e))),
        // Raw fixed point over the whole documented range (exercises saturation and rounding).
        ((1i32 << 30)..=i32::MAX, -31i32..=30).prop_map(|(multiplier, shift)| Requant { multiplier, shift }),
        Just(Requant::default()),
    ]
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    // Channels per group chosen so both the packed (multiple of 4) and byte paths run.
    let icg = prop::sample::select(vec![1usize, 2, 3, 4, 5, 8, 12]);
    (icg, 1usize..=6, 1usize..=3, 1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3, prop::array::uniform4(0usize..=2), 1usize..=2)
        .prop_flat_map(|(icg, ocg, groups, kh, kw, sh, sw, pad, n)| {
            let geom = ConvGeom {
                in_c: icg * groups,
                out_c: ocg * groups,
                kh,
                kw,
                stride_h: sh,
                stride_w: sw,
                pad,
                groups,
            };
            let min_h = kh.saturating_sub(pad[0] + pad[2]).max(1);
            let min_w = kw.saturating_sub(pad[1] + pad[3]).max(1);
            (Just(geom), Just(n), min_h..=min_h + 7, min_w..=min_w + 7)
        })
        .prop_flat_map(|(geom, n, h, w)| {
            let wlen = geom.out_c * geom.kh * geom.kw * (geom.in_c / geom.groups);
            let out_c = geom.out_c;
            let bias = prop_oneof![
                4 => -20_000i32..20_000,
                1 => any::<i32>(),
            ];
            (
                Just(geom),
                Just(n),
                Just(h),
                Just(w),
                prop::collection::vec(any::<i8>(), wlen),
                prop::collection::vec(bias, out_c),
                prop::collection::vec(requant_strategy(), out_c),
                -128i32..=127,
                -128i32..=127,
                any::<i8>(),
                any::<i8>(),
            )
        })
        .prop_flat_map(|(geom, n, h, w, weights, bias, requant, izp, ozp, a, b)| {
            let len = n * h * w * geom.in_c;
            let op = QConv {
                geom,
                weights,
                bias,
                requant,
                input_zp: izp,
                output_zp: ozp,
                act_min: a.min(b),
                act_max: a.max(b),
            };
            (Just(op), Just(n), Just(h), Just(w), prop::collection::vec(any::<i8>(), len))
        })
        .prop_map(|(op, n, h, w, input)| ConvCase { op, n, h, w, input })
}

/// Bounded case counts keep CI fast on a software adapter; `PROPTEST_CASES` raises them.
fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases);
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

fn check_conv(b: &dyn UnderTest, case: &ConvCase) -> Result<(), TestCaseError> {
    let want = reference_conv(&case.op, case.n, case.h, case.w, &case.input);
    let got = b.conv(&case.op, case.n, case.h, case.w, &case.input).map_err(TestCaseError::fail)?;
    prop_assert_eq!(got.len(), want.len());
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        return Err(TestCaseError::fail(format!(
            "first mismatch at byte {i}: got {} want {} ({} of {} bytes differ)",
            got[i],
            want[i],
            (0..want.len()).filter(|&j| got[j] != want[j]).count(),
            want.len()
        )));
    }
    Ok(())
}

/// Pinned cases that once mattered or that random sampling rarely reaches.
fn pinned_conv_cases() -> Vec<ConvCase> {
    let mut cases = Vec::new();
    // Depthwise 3x3 stride 2 with asymmetric padding, packed-width channels.
    let geom = ConvGeom { in_c: 8, out_c: 8, kh: 3, kw: 3, stride_h: 2, stride_w: 2, pad: [1, 1, 0, 0], groups: 8 };
    cases.push(make_case(geom, 2, 9, 7, 11));
    // Accumulator overflow: bias near i32::MAX wraps exactly as the reference does.
    let geom = ConvGeom { in_c: 16, out_c: 4, kh: 1, kw: 1, stride_h: 1, stride_w: 1, pad: [0; 4], groups: 1 };
    let mut c = make_case(geom, 1, 3, 5, 12);
    c.op.bias = vec![i32::MAX, i32::MIN, i32::MAX - 5, i32::MIN + 5];
    c.op.requant = vec![Requant { multiplier: i32::MAX, shift: 30 }; 4];
    cases.push(c);
    // Odd channel count (the byte path) with an output not a multiple of 4 bytes.
    let geom = ConvGeom { in_c: 3, out_c: 5, kh: 3, kw: 3, stride_h: 1, stride_w: 1, pad: [1, 1, 1, 1], groups: 1 };
    cases.push(make_case(geom, 1, 5, 3, 13));
    cases
}

fn make_case(geom: ConvGeom, n: usize, h: usize, w: usize, seed: u64) -> ConvCase {
    // A small LCG: deterministic bytes without a dependency on the RNG crate's stream.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let wlen = geom.out_c * geom.kh * geom.kw * (geom.in_c / geom.groups);
    let op = QConv {
        weights: (0..wlen).map(|_| next() as i8).collect(),
        bias: (0..geom.out_c).map(|_| (next() % 4001) as i32 - 2000).collect(),
        requant: (0..geom.out_c).map(|_| Requant::from_real(f64::from(next() % 1000 + 1) / 20_000.0)).collect(),
        input_zp: (next() % 256) as i32 - 128,
        output_zp: (next() % 256) as i32 - 128,
        act_min: -128,
        act_max: 127,
        geom,
    };
    let input = (0..n * h * w * op.geom.in_c).map(|_| next() as i8).collect();
    ConvCase { op, n, h, w, input }
}

/// Instantiates the suite for one backend. `$make` evaluates to `Option<Box<dyn UnderTest>>`
/// (`None`: not available here, already reported).
macro_rules! conformance_suite {
    ($name:ident, $make:expr, $cases:expr) => {
        mod $name {
            use super::*;

            fn backend() -> Option<Box<dyn UnderTest>> {
                $make
            }

            #[test]
            fn conv_pinned_cases_match_reference() {
                let Some(b) = backend() else { return };
                for (i, case) in pinned_conv_cases().iter().enumerate() {
                    if let Err(e) = check_conv(b.as_ref(), case) {
                        panic!("pinned case {i}: {e}");
                    }
                }
            }

            #[test]
            fn conv_random_geometry_matches_reference() {
                let Some(b) = backend() else { return };
                runner($cases).run(&conv_case(), |case| check_conv(b.as_ref(), &case)).unwrap();
            }

            #[test]
            fn random_plans_match_reference() {
                let Some(b) = backend() else { return };
                runner($cases / 2).run(&(any::<u64>(), 1usize..=3), |(seed, n)| check_plan(b.as_ref(), seed, n)).unwrap();
            }
        }
    };
}

fn check_plan(b: &dyn UnderTest, seed: u64, n: usize) -> Result<(), TestCaseError> {
    // Two generators: the kernels crate's (every op kind, grouped/depthwise convs) and this
    // suite's (arbitrary resize sizes, split head tensors, repeated concat inputs).
    let plan = if seed.is_multiple_of(2) { kernels::synth::random_plan(seed) } else { plans::random_plan(seed) };
    let frames = plans::frames(&plan, n, seed);
    let want = plans::reference(&plan, &frames);
    let got = b.plan(&plan, &frames).map_err(TestCaseError::fail)?;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        prop_assert_eq!(g.as_slice(), w.as_slice(), "seed {} frame {} of {}: ops {:?}", seed, i, n, plan.ops.iter().map(|o| o.kind()).collect::<Vec<_>>());
    }
    Ok(())
}

// The CPU reference against itself through the batch wrapper: proves the harness compares
// what it should (a broken generator or comparison shows here first).
struct Oracle;
impl UnderTest for Oracle {
    fn conv(&self, op: &QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Result<Vec<i8>, String> {
        Ok(reference_conv(op, n, h, w, input))
    }
    fn plan(&self, plan: &Plan, frames: &[Vec<u8>]) -> Result<Vec<Candidates>, String> {
        Ok(plans::reference(plan, frames))
    }
}
conformance_suite!(cpu, Some(Box::new(Oracle)), 64);

#[cfg(feature = "wgpu")]
mod wgsl_backend {
    use std::sync::{Arc, OnceLock};

    use kernels::ir::QConv;
    use kernels::wgsl::{Dot4Mode, WgslContext, WgslOptions};

    pub struct Wgsl(pub Arc<WgslContext>);

    impl super::UnderTest for Wgsl {
        fn conv(&self, op: &QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Result<Vec<i8>, String> {
            let prog = self.0.prepare_conv(op, n, h, w).map_err(|e| e.to_string())?;
            let (oh, ow) = op.geom.out_hw(h, w);
            let mut out = vec![0u8; n * oh * ow * op.geom.out_c];
            prog.run(&[bytemuck::cast_slice(input)], &mut [&mut out]).map_err(|e| e.to_string())?;
            Ok(bytemuck::cast_slice(&out).to_vec())
        }
        fn plan(&self, plan: &kernels::plan::Plan, frames: &[Vec<u8>]) -> Result<Vec<kernels::plan::Candidates>, String> {
            super::plans::run(&mut kernels::wgsl::WgslBackend::with_context(Arc::clone(&self.0)), plan, frames)
        }
    }

    /// One device per dot-product mode for the whole test binary (device creation is slow
    /// on a software adapter).
    pub fn context(mode: Dot4Mode) -> Option<Arc<WgslContext>> {
        static CTX: [OnceLock<Option<Arc<WgslContext>>>; 2] = [OnceLock::new(), OnceLock::new()];
        CTX[mode as usize]
            .get_or_init(|| {
                let opts = WgslOptions { dot4: Some(mode), ..WgslOptions::default() };
                match WgslContext::new(&opts) {
                    Ok(ctx) => {
                        eprintln!("wgsl conformance on {}", ctx.report());
                        Some(Arc::new(ctx))
                    }
                    Err(e) => {
                        if std::env::var("VIGIL_REQUIRE_WGPU").is_ok_and(|v| v == "1") {
                            panic!("VIGIL_REQUIRE_WGPU=1 but the wgsl backend cannot start: {e}");
                        }
                        eprintln!("SKIPPED: wgsl conformance: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    pub fn make(mode: Dot4Mode) -> Option<Box<dyn super::UnderTest>> {
        context(mode).map(|c| Box::new(Wgsl(c)) as Box<dyn super::UnderTest>)
    }
}

#[cfg(feature = "wgpu")]
conformance_suite!(wgsl_dot4_native, wgsl_backend::make(kernels::wgsl::Dot4Mode::Native), 24);
#[cfg(feature = "wgpu")]
conformance_suite!(wgsl_dot4_emulated, wgsl_backend::make(kernels::wgsl::Dot4Mode::Emulated), 12);

#[cfg(feature = "cuda")]
mod cuda_backend {
    use std::sync::{Mutex, OnceLock};

    use kernels::cuda::CudaBackend;
    use kernels::ir::QConv;
    use kernels::plan::{Candidates, Plan};

    pub struct Cuda(pub &'static Mutex<CudaBackend>);

    impl super::UnderTest for Cuda {
        fn conv(&self, op: &QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Result<Vec<i8>, String> {
            let b = self.0.lock().map_err(|e| e.to_string())?;
            b.conv_once(op, n, h, w, input).map_err(|e| e.to_string())
        }
        fn plan(&self, plan: &Plan, frames: &[Vec<u8>]) -> Result<Vec<Candidates>, String> {
            let mut b = self.0.lock().map_err(|e| e.to_string())?;
            super::plans::run(&mut *b, plan, frames)
        }
    }

    pub fn make() -> Option<Box<dyn super::UnderTest>> {
        static DEV: OnceLock<Option<Mutex<CudaBackend>>> = OnceLock::new();
        let dev = DEV.get_or_init(|| match CudaBackend::new(0) {
            Ok(b) => {
                eprintln!("cuda conformance on {}", b.describe());
                Some(Mutex::new(b))
            }
            Err(e) => {
                if std::env::var("VIGIL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                    panic!("VIGIL_REQUIRE_CUDA=1 but the cuda backend cannot start: {e}");
                }
                eprintln!("SKIPPED: cuda conformance: {e}");
                None
            }
        });
        dev.as_ref().map(|m| Box::new(Cuda(m)) as Box<dyn super::UnderTest>)
    }
}

#[cfg(feature = "cuda")]
conformance_suite!(cuda, cuda_backend::make(), 64);

/// The requantisation emulation over the full i32 range, not only through int8 outputs.
#[cfg(feature = "wgpu")]
#[test]
fn wgsl_integer_helpers_match_reference_over_i32() {
    use kernels::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};
    use kernels::wgsl::{Dot4Mode, ProbeOp};
    let Some(ctx) = wgsl_backend::context(Dot4Mode::Emulated) else { return };
    let edges = [i32::MIN, i32::MIN + 1, -(1 << 30) - 1, -(1 << 30), -65_537, -65_536, -2, -1, 0, 1, 2, 65_535, 65_536, 1 << 30, i32::MAX - 1, i32::MAX];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut values: Vec<i32> = edges.to_vec();
    values.extend((0..48).map(|_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 32) as i32
    }));
    let mut pairs = Vec::new();
    for &a in &values {
        for &b in &values {
            pairs.push((a, b));
        }
    }
    // srdhm and saturating_add over every pair.
    let args: Vec<_> = pairs.iter().map(|&(a, b)| (a, b, 0)).collect();
    let got = ctx.probe_integer_ops(ProbeOp::Srdhm, &args).unwrap();
    for (&(a, b, _), g) in args.iter().zip(&got) {
        assert_eq!(*g, saturating_rounding_doubling_high_mul(a, b), "srdhm({a}, {b})");
    }
    let got = ctx.probe_integer_ops(ProbeOp::SatAdd, &args).unwrap();
    for (&(a, b, _), g) in args.iter().zip(&got) {
        assert_eq!(*g, a.saturating_add(b), "saturating_add({a}, {b})");
    }
    // rounding_divide_by_pot over every exponent; the full requantisation over every shift.
    let args: Vec<_> = values.iter().flat_map(|&x| (0..=31).map(move |e| (x, 0, e))).collect();
    let got = ctx.probe_integer_ops(ProbeOp::DivPot, &args).unwrap();
    for (&(x, _, e), g) in args.iter().zip(&got) {
        assert_eq!(*g, rounding_divide_by_pot(x, e), "rounding_divide_by_pot({x}, {e})");
    }
    let mults: Vec<i32> = values.iter().map(|v| (v.unsigned_abs() | (1 << 30)).min(i32::MAX as u32) as i32).chain([0]).collect();
    let args: Vec<_> = values
        .iter()
        .flat_map(|&x| mults.iter().flat_map(move |&m| (-31..=30).step_by(3).chain([30]).map(move |s| (x, m, s))))
        .collect();
    let got = ctx.probe_integer_ops(ProbeOp::Requant, &args).unwrap();
    for (&(x, m, s), g) in args.iter().zip(&got) {
        assert_eq!(*g, Requant { multiplier: m, shift: s }.apply(x), "requant({x}, {m}, {s})");
    }
}


// ---------------------------------------------------------------------------------------------
// Whole random plans: preprocessing, a random op chain, heads, peaks and top-K.

mod plans {
    use kernels::backend::Backend;
    use kernels::ir::{ConvGeom, QConv};
    use kernels::plan::{
        AddParams, Candidates, ChannelRef, Encoding, HeadSpec, Op, Plan, PlanBuilder, PlanMeta, Preprocess, Rescale, TensorId,
        Tier,
    };
    use kernels::quant::Requant;

    pub struct Lcg(pub u64);
    impl Lcg {
        pub fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        pub fn below(&mut self, n: u32) -> u32 {
            self.next() % n.max(1)
        }
        pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
            lo + self.below((hi - lo + 1) as u32) as i32
        }
        fn scale(&mut self) -> f32 {
            0.01 + self.below(200) as f32 / 1000.0
        }
    }

    struct Gen {
        r: Lcg,
        b: PlanBuilder,
        n: usize,
    }

    impl Gen {
        fn tensor(&mut self, h: u32, w: u32, c: u32) -> TensorId {
            let (s, zp) = (self.r.scale(), self.r.range(-128, 127));
            self.n += 1;
            self.b.tensor(format!("t{}", self.n), h, w, c, s, zp)
        }

        fn conv(&mut self, x: TensorId, out_c: u32, k: u32, stride: u32, groups: u32) -> TensorId {
            let xd = self.b.desc(x).clone();
            let pad = [0, 1, 2, 3].map(|_| self.r.below(k) as usize);
            let kk = k as usize;
            let padded_h = xd.h as usize + pad[0] + pad[2];
            let padded_w = xd.w as usize + pad[1] + pad[3];
            let (kh, kw) = (kk.min(padded_h).max(1), kk.min(padded_w).max(1));
            let pad = [pad[0].min(kh - 1), pad[1].min(kw - 1), pad[2].min(kh - 1), pad[3].min(kw - 1)];
            let geom = ConvGeom {
                in_c: xd.c as usize,
                out_c: out_c as usize,
                kh,
                kw,
                stride_h: stride as usize,
                stride_w: stride as usize,
                pad,
                groups: groups as usize,
            };
            let (oh, ow) = geom.out_hw(xd.h as usize, xd.w as usize);
            let y = self.tensor(oh as u32, ow as u32, out_c);
            let yd = self.b.desc(y).clone();
            let wlen = geom.out_c * geom.kh * geom.kw * (geom.in_c / geom.groups);
            let fan = (wlen / geom.out_c).max(1) as f64;
            let q = QConv {
                weights: (0..wlen).map(|_| self.r.next() as i8).collect(),
                bias: (0..geom.out_c).map(|_| self.r.range(-3000, 3000)).collect(),
                requant: (0..geom.out_c)
                    .map(|_| Requant::from_real(f64::from(self.r.range(1, 100)) / (30.0 * fan.sqrt() * 128.0)))
                    .collect(),
                input_zp: xd.zero_point,
                output_zp: yd.zero_point,
                act_min: -128 + self.r.below(3) as i8 * 40,
                act_max: 127 - self.r.below(3) as i8 * 30,
                geom,
            };
            self.b.conv(x, y, &q);
            y
        }

        fn same_shape_conv(&mut self, x: TensorId) -> TensorId {
            let c = self.b.desc(x).c;
            let k = if self.r.below(2) == 0 { 1 } else { 3 };
            let xd = self.b.desc(x).clone();
            // Stride 1 with symmetric padding keeps the shape.
            let pad = k / 2;
            let geom = ConvGeom { in_c: c as usize, out_c: c as usize, kh: k, kw: k, stride_h: 1, stride_w: 1, pad: [pad; 4], groups: 1 };
            let y = self.tensor(xd.h, xd.w, c);
            let yd = self.b.desc(y).clone();
            let wlen = geom.out_c * k * k * geom.in_c;
            let q = QConv {
                weights: (0..wlen).map(|_| self.r.next() as i8).collect(),
                bias: (0..geom.out_c).map(|_| self.r.range(-2000, 2000)).collect(),
                requant: (0..geom.out_c).map(|_| Requant::from_real(1.0 / (40.0 * (wlen as f64).sqrt()))).collect(),
                input_zp: xd.zero_point,
                output_zp: yd.zero_point,
                act_min: -128,
                act_max: 127,
                geom,
            };
            self.b.conv(x, y, &q);
            y
        }
    }

    /// A random valid plan (small shapes: the suite runs on a software adapter).
    pub fn random_plan(seed: u64) -> Plan {
        let mut g = Gen { r: Lcg(seed), b: PlanBuilder::new(), n: 0 };
        let (h, w) = (4 + g.r.below(14), 4 + g.r.below(14));
        let input = g.tensor(h, w, 3);
        let mut cur = input;
        let ops = 1 + g.r.below(6);
        for _ in 0..ops {
            let d = g.b.desc(cur).clone();
            cur = match g.r.below(7) {
                0 | 1 => {
                    let groups = if d.c.is_multiple_of(3) && g.r.below(3) == 0 { 3 } else { 1 };
                    let out_c = groups * (1 + g.r.below(if groups == 1 { 16 } else { 4 }));
                    let k = [1, 3, 5][g.r.below(3) as usize];
                    let stride = 1 + g.r.below(2);
                    g.conv(cur, out_c, k, stride, groups)
                }
                2 => {
                    let (kh, kw) = (1 + g.r.below(3), 1 + g.r.below(3));
                    let (sh, sw) = (1 + g.r.below(2), 1 + g.r.below(2));
                    let pad = [g.r.below(kh), g.r.below(kw), g.r.below(kh), g.r.below(kw)];
                    if d.h + pad[0] + pad[2] < kh || d.w + pad[1] + pad[3] < kw {
                        continue;
                    }
                    let oh = (d.h + pad[0] + pad[2] - kh) / sh + 1;
                    let ow = (d.w + pad[1] + pad[3] - kw) / sw + 1;
                    let y = g.b.tensor(format!("pool{}", g.n), oh, ow, d.c, d.scale, d.zero_point);
                    g.n += 1;
                    g.b.op(Op::MaxPool { input: cur, output: y, kh, kw, stride_h: sh, stride_w: sw, pad });
                    y
                }
                3 => {
                    let (oh, ow) = (1 + g.r.below(2 * d.h).min(23), 1 + g.r.below(2 * d.w).min(23));
                    let y = g.b.tensor(format!("resize{}", g.n), oh, ow, d.c, d.scale, d.zero_point);
                    g.n += 1;
                    g.b.op(Op::ResizeNearest { input: cur, output: y });
                    y
                }
                4 => {
                    let mut table = [0i8; 256];
                    for t in table.iter_mut() {
                        *t = g.r.next() as i8;
                    }
                    let y = g.tensor(d.h, d.w, d.c);
                    g.b.lut(cur, y, &table);
                    y
                }
                5 => {
                    let other = g.same_shape_conv(cur);
                    let od = g.b.desc(other).clone();
                    let y = g.tensor(d.h, d.w, d.c);
                    let yd = g.b.desc(y).clone();
                    let params = AddParams::new(d.scale, od.scale, yd.scale, -128 + g.r.below(2) as i8 * 100, 127);
                    g.b.op(Op::Add { a: cur, b: other, output: y, params });
                    y
                }
                _ => {
                    let oc = 1 + g.r.below(6);
                    let other = g.conv(cur, oc, 1, 1, 1);
                    let od = g.b.desc(other).clone();
                    let mut inputs = vec![cur, other];
                    if g.r.below(2) == 0 {
                        inputs.push(cur);
                    }
                    let c: u32 = inputs.iter().map(|t| g.b.desc(*t).c).sum();
                    let y = g.tensor(od.h, od.w, c);
                    let ys = g.b.desc(y).scale;
                    let rescale = inputs
                        .iter()
                        .map(|t| {
                            let td = g.b.desc(*t);
                            Rescale::new(td.scale, td.zero_point, ys)
                        })
                        .collect();
                    g.b.op(Op::Concat { inputs, rescale, output: y });
                    y
                }
            };
        }
        // Heads: one tensor with classes + 5 channels, or heatmap and the rest apart.
        let classes = 1 + g.r.below(3);
        let cd = g.b.desc(cur).clone();
        let split = g.r.below(2) == 0;
        let (heat, rest, ch0, rest0) = if split {
            let heat = g.conv(cur, classes + 1, 1, 1, 1);
            let rest = g.conv(cur, 5, 1, 1, 1);
            (heat, rest, 1, 0)
        } else {
            let t = g.conv(cur, classes + 5, 1, 1, 1);
            (t, t, 0, classes)
        };
        let _ = cd;
        let c = |tensor, channel| ChannelRef { tensor, channel };
        let heads = HeadSpec {
            heatmap: heat,
            heatmap_channel: ch0,
            num_classes: classes,
            offset: [c(rest, rest0), c(rest, rest0 + 1)],
            size: [c(rest, rest0 + 2), c(rest, rest0 + 3)],
            depth: c(rest, rest0 + 4),
            stride: 4,
            threshold: g.r.range(-40, 60) as i8,
            max_candidates: 1 + g.r.below(24),
            score_enc: Encoding::Sigmoid,
            offset_enc: Encoding::Linear { unit: 1.0 },
            size_enc: Encoding::Log { unit: 4.0 },
            depth_enc: Encoding::Log { unit: 1.0 },
        };
        let (src_w, src_h) = (3 + g.r.below(40), 3 + g.r.below(30));
        let ind = g.b.desc(input).clone();
        let pre = Preprocess::normalise(src_w, src_h, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], ind.scale, ind.zero_point);
        let meta = PlanMeta { variant: format!("random-{seed}"), tier: Tier::Full, model_version: 0, ops_per_frame: 0, latency_us: 0, energy_mj: 0.0 };
        g.b.finish(meta, input, pre, heads).unwrap_or_else(|e| panic!("seed {seed}: generator made an invalid plan: {e}"))
    }

    /// Random camera frames for a plan.
    pub fn frames(plan: &Plan, n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut r = Lcg(seed ^ 0x5eed);
        (0..n).map(|_| (0..plan.preprocess.frame_bytes()).map(|_| r.next() as u8).collect()).collect()
    }

    /// Runs a prepared batch on any backend.
    pub fn run<B: Backend>(b: &mut B, plan: &Plan, frames: &[Vec<u8>]) -> Result<Vec<Candidates>, String> {
        let mut prepared = b.prepare(plan, frames.len().max(1)).map_err(|e| e.to_string())?;
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let mut out: Vec<Candidates> = frames.iter().map(|_| Candidates::with_capacity(plan.heads.max_candidates as usize)).collect();
        b.run(&mut prepared, &refs, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The oracle.
    pub fn reference(plan: &Plan, frames: &[Vec<u8>]) -> Vec<Candidates> {
        run(&mut kernels::cpu_ref::CpuRef, plan, frames).expect("cpu-ref runs every valid plan")
    }
}

/// Every tensor of random plans (preprocessing output and each op's output), for a batch of
/// frames, byte for byte against `cpu_ref` run op by op: a mismatch names the op.
#[cfg(feature = "wgpu")]
#[test]
fn wgsl_every_tensor_of_random_plans_matches_reference() {
    use kernels::backend::Backend;
    use kernels::wgsl::{Dot4Mode, WgslBackend};
    let Some(ctx) = wgsl_backend::context(Dot4Mode::Native) else { return };
    let cases: u64 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
    for seed in 0..cases {
        let plan = if seed.is_multiple_of(2) { kernels::synth::random_plan(seed) } else { plans::random_plan(seed) };
        let n = 1 + (seed % 3) as usize;
        let frames = plans::frames(&plan, n, seed);
        let mut b = WgslBackend::with_context(std::sync::Arc::clone(&ctx));
        let mut p = b.prepare(&plan, n).unwrap();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let mut out: Vec<Candidates> = frames.iter().map(|_| Candidates::with_capacity(plan.heads.max_candidates as usize)).collect();
        b.run(&mut p, &refs, &mut out).unwrap();
        let got = p.read_tensors(n).unwrap();
        let largest = plan.tensors.iter().map(|t| t.len()).max().unwrap_or(0);
        for (f, frame) in frames.iter().enumerate() {
            let mut arena = vec![0i8; plan.arena_bytes as usize];
            let mut scratch = vec![0i8; largest];
            let check = |arena: &[i8], id: usize, what: &str| {
                let d = &plan.tensors[id];
                let (want, have) = (&arena[d.range()], &got[id][f * d.len()..(f + 1) * d.len()]);
                if let Some(i) = (0..want.len()).find(|&i| want[i] != have[i]) {
                    panic!("seed {seed} frame {f}/{n}: {what} -> tensor {} ({}x{}x{}) byte {i}: got {} want {}", d.name, d.h, d.w, d.c, have[i], want[i]);
                }
            };
            let input = plan.tensor(plan.input);
            cpu_ref::preprocess(&plan.preprocess, frame, input.h as usize, input.w as usize, &mut arena[input.range()]);
            check(&arena, plan.input.index(), "preprocess");
            for (k, op) in plan.ops.iter().enumerate() {
                cpu_ref::run_op(&plan, op, &mut arena, &mut scratch);
                check(&arena, op.output().index(), &format!("op {k} ({})", op.kind()));
            }
        }
    }
}
