//! Model IR, INT8 quantisation, the `.vplan` artifact and the inference backends.
//!
//! The integer semantics are defined once, in [`quant`] and [`cpu_ref`]: every other
//! backend (the fast CPU path, CUDA, WGSL) must produce byte-identical outputs.
//!
//! Tensor layout everywhere: activations NHWC int8 with a per-tensor scale and zero
//! point; convolution weights OHWI int8 (`[out_c][kh][kw][in_c / groups]`), symmetric,
//! with a per-output-channel scale; bias i32; requantisation per output channel by a
//! fixed-point multiplier and shift.

pub mod backend;
pub mod cpu_ref;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod ir;
pub mod plan;
pub mod quant;
pub mod synth;
pub mod select;
#[cfg(feature = "wgpu")]
pub mod wgsl;
