//! Model IR, INT8 quantisation, the `.vplan` artifact and the inference backends.
//!
//! The integer semantics are defined once, in [`quant`] and [`cpu_ref`]: every other
//! backend (the fast CPU path, CUDA, WGSL) must produce byte-identical outputs.
//!
//! Tensor layout everywhere: activations NHWC int8 with a per-tensor scale and zero
//! point; convolution weights OHWI int8 (`[out_c][kh][kw][in_c / groups]`), symmetric,
//! with a per-output-channel scale; bias i32; requantisation per output channel by a
//! fixed-point multiplier and shift.
//!
//! `unsafe` code lives only in `sys` (AVX2 intrinsics, the worker pool), `avx512` (AVX-512
//! intrinsics behind safe, bounds-checked functions) and the optional `cuda` module; the rest
//! of the crate is `#![deny(unsafe_code)]`.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // AVX-512 intrinsics behind safe, bounds-checked entry points; each block carries a SAFETY comment.
pub mod avx512;
pub mod backend;
pub mod cpu;
pub mod compile;
pub mod cpu_ref;
#[cfg(feature = "cuda")]
#[allow(unsafe_code)] // cudarc launches and device memory views; each block carries a SAFETY comment.
pub mod cuda;
pub mod eval;
pub mod fp32;
pub mod ir;
pub mod onnx;
pub mod onnx_proto;
pub mod plan;
pub mod quant;
pub mod quantize;
pub mod synth;
pub mod select;
#[allow(unsafe_code)] // AVX2 intrinsics and the thread pool behind safe entry points; each block carries a SAFETY comment.
mod sys;
pub mod vplan;
#[cfg(feature = "wgpu")]
pub mod wgsl;
