//! `wgsl`: the INT8 plan on wgpu compute shaders (feature `wgpu`).
//!
//! Every op is a WGSL shader in `kernels/shaders/`, with integer arithmetic that reproduces
//! the CPU reference bit for bit: i32 accumulation (wrapping, as in `cpu_ref`), and the
//! gemmlowp requantisation emulated in 32-bit arithmetic (the 64-bit high multiply is built
//! from 16-bit halves, `shaders/common.wgsl`). Tensors live on the device as packed `u32`
//! words (four int8 values, little-endian); every invocation writes whole words.
//!
//! Buffers, pipelines and bind groups are created at prepare time ([`Program`]); a run
//! uploads the input, records the dispatches into one submission and reads the outputs back.

mod backend;
mod conv;
mod ctx;
mod ops;
mod program;

use std::sync::Arc;

pub use ctx::{AdapterReport, Dot4Mode, WgslContext, WgslError, WgslOptions};
pub use backend::{WgslBackend, WgslPrepared};
pub use program::Program;

use crate::ir::QConv;
use program::DevTensor;

impl WgslContext {
    /// Prepares one convolution over a batch of `n` NHWC images of `h x w`: a program with
    /// one input (`n*h*w*in_c` bytes) and one output (`n*oh*ow*out_c` bytes).
    pub fn prepare_conv(self: &Arc<Self>, op: &QConv, n: usize, h: usize, w: usize) -> Result<Program, WgslError> {
        let view = crate::plan::ConvView::of(op);
        let (oh, ow) = conv::validate(&view, h, w)?;
        let input = DevTensor { bytes: n * h * w * op.geom.in_c, buf: self.storage("conv.in", n * h * w * op.geom.in_c) };
        let obytes = n * oh * ow * op.geom.out_c;
        let output = DevTensor { bytes: obytes, buf: self.storage("conv.out", obytes) };
        let consts = conv::upload(self, "conv", &view);
        let d = conv::dispatch(self, "conv", &view, &consts, n, h, w, &input, &output)?;
        Ok(Program::new(Arc::clone(self), vec![input], vec![output], vec![d]))
    }
}

/// Which integer helper of `shaders/common.wgsl` [`WgslContext::probe_integer_ops`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOp {
    /// `requant_apply(x, multiplier, shift)`: [`crate::quant::Requant::apply`].
    Requant,
    /// `srdhm(a, b)`: [`crate::quant::saturating_rounding_doubling_high_mul`].
    Srdhm,
    /// `rounding_divide_by_pot(x, e)`: [`crate::quant::rounding_divide_by_pot`].
    DivPot,
    /// `saturating_add(a, b)`: `i32::saturating_add`.
    SatAdd,
}

impl WgslContext {
    /// Runs one of the shaders' integer helpers on the device over `(a, b, c)` triples (the
    /// meaning of each follows [`ProbeOp`]), so conformance tests can compare the 32-bit
    /// emulation with the CPU reference over the full i32 range. Not for the hot path.
    pub fn probe_integer_ops(self: &Arc<Self>, op: ProbeOp, args: &[(i32, i32, i32)]) -> Result<Vec<i32>, WgslError> {
        let sel = match op {
            ProbeOp::Requant => 0,
            ProbeOp::Srdhm => 1,
            ProbeOp::DivPot => 2,
            ProbeOp::SatAdd => 3,
        };
        let packed: Vec<[i32; 4]> = args.iter().map(|&(a, b, c)| [a, b, c, sel]).collect();
        let count = u32::try_from(args.len()).map_err(|_| WgslError::Invalid("too many probe values".into()))?;
        let uniform = self.uniform("probe", bytemuck::cast_slice(&[count, 0, 0, 0]));
        let input = DevTensor { bytes: args.len() * 16, buf: self.storage_init("probe.args", bytemuck::cast_slice(&packed)) };
        let output = DevTensor { bytes: args.len() * 4, buf: self.storage("probe.out", args.len() * 4) };
        let (pipeline, layout) = self.cached_pipeline("requant_probe", PROBE_WGSL, 1, &[])?;
        let bind = self.bind("probe", &layout, &uniform, &[&input.buf], &output.buf);
        let d = program::Dispatch { label: "probe".into(), pipeline, bind, grid: self.grid(count)? };
        let prog = Program::new(Arc::clone(self), vec![], vec![output], vec![d]);
        let mut out = vec![0u8; args.len() * 4];
        prog.run(&[], &mut [&mut out])?;
        Ok(out.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

const PROBE_WGSL: &str = include_str!("../shaders/requant_probe.wgsl");
