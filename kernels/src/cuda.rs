//! `cuda`: the INT8 plan on NVIDIA GPUs through the driver API (feature `cuda`).
//!
//! * Built with cudarc's `dynamic-loading` and a fixed `cuda-12080` binding set, so the crate
//!   compiles with no CUDA toolkit; [`probe`] checks that `libcuda` and `libnvrtc` can be
//!   loaded **before** any CUDA call (cudarc's loader panics when a library is missing).
//! * Kernels are the `.cu` sources of `kernels/cuda/`, compiled at start-up by NVRTC for the
//!   device's architecture and cached on disk, keyed by the SHA-256 of source + architecture +
//!   NVRTC version ([`compile_cached`]).
//! * Convolution: implicit GEMM on tensor cores (`mma.sync.m16n8k32` with s8 operands) on
//!   sm_80+, `__dp4a` on older GPUs, a byte kernel for channel counts that are not multiples of
//!   four; bias, requantisation, zero point and clamp are fused into the epilogue.
//! * The whole frame (H2D copy of the batch from pinned host memory, preprocessing of every
//!   camera in one launch, the network, peak extraction and top-K, D2H copy of the candidate
//!   lists into pinned memory) is captured once per batch size as a CUDA graph at prepare
//!   time; a run replays the graph and waits.

mod backend;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use backend::{CudaBackend, CudaPrepared};

/// Why the CUDA backend cannot start or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// `libcuda` or `libnvrtc` cannot be loaded here.
    #[error("{0}")]
    Unavailable(String),
    /// NVRTC rejected a source.
    #[error("NVRTC failed on {source_name} for {arch}: {log}")]
    Compile {
        /// `.cu` file.
        source_name: String,
        /// Target architecture.
        arch: String,
        /// Compiler log.
        log: String,
    },
    /// A driver call failed.
    #[error("CUDA driver error in {what}: {message}")]
    Driver {
        /// The operation.
        what: String,
        /// The driver's message.
        message: String,
    },
}

/// The kernel sources, each compiled as `common.cuh` + file.
pub const SOURCES: &[(&str, &str)] = &[
    ("conv.cu", include_str!("../cuda/conv.cu")),
    ("elementwise.cu", include_str!("../cuda/elementwise.cu")),
    ("preprocess.cu", include_str!("../cuda/preprocess.cu")),
    ("decode.cu", include_str!("../cuda/decode.cu")),
];

/// Text prepended to every source.
pub const COMMON: &str = include_str!("../cuda/common.cuh");

/// Whether the CUDA driver library can be loaded (no CUDA call is made).
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names and drops
    // the handle; it calls no CUDA function and has no precondition.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether the NVRTC library can be loaded (no NVRTC call is made).
pub fn nvrtc_present() -> bool {
    // SAFETY: as for `driver_present`: a dlopen probe with no precondition.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Checks, without touching CUDA, that both libraries the backend needs can be loaded.
pub fn probe() -> Result<(), CudaError> {
    if !driver_present() {
        return Err(CudaError::Unavailable(
            "libcuda (the NVIDIA driver library) is not loadable: no NVIDIA driver here; in a container, \
             was it started with GPU passthrough (--gpus all)?"
                .into(),
        ));
    }
    if !nvrtc_present() {
        return Err(CudaError::Unavailable(
            "libnvrtc is not loadable: install the CUDA runtime compiler (e.g. the toolkit's lib64, or the pip \
             package nvidia-cuda-nvrtc-cu12) and put its lib directory on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    Ok(())
}

/// NVRTC's version as `(major, minor)`. Call only after [`nvrtc_present`].
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers are to live locals; nvrtcVersion only writes two ints. The
    // library is loaded by cudarc on first use; callers have checked `nvrtc_present()`.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CudaError::Driver { what: "nvrtcVersion".into(), message: format!("{r:?}") });
    }
    Ok((major, minor))
}

/// The NVRTC options used for every source (`arch` is e.g. `compute_80`).
pub fn compile_options(arch: &'static str) -> cudarc::nvrtc::CompileOptions {
    cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        options: vec!["--std=c++17".into()],
        name: None,
        ..Default::default()
    }
}

/// Compiles one source (with [`COMMON`] prepended) to PTX. Needs NVRTC only, not a GPU.
pub fn compile(source_name: &str, source: &str, arch: &'static str) -> Result<String, CudaError> {
    let text = format!("{COMMON}\n{source}");
    let opts = compile_options(arch);
    match cudarc::nvrtc::compile_ptx_with_opts(text, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => Err(CudaError::Compile {
            source_name: source_name.into(),
            arch: arch.into(),
            log: log.to_string_lossy().into_owned(),
        }),
        Err(e) => Err(CudaError::Compile { source_name: source_name.into(), arch: arch.into(), log: format!("{e:?}") }),
    }
}

/// The on-disk PTX cache directory: `$VIGIL_CUDA_CACHE`, else `$XDG_CACHE_HOME/vigil/cuda`,
/// else `$HOME/.cache/vigil/cuda`, else the system temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIGIL_CUDA_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("vigil/cuda");
    }
    if let Some(d) = std::env::var_os("HOME") {
        return PathBuf::from(d).join(".cache/vigil/cuda");
    }
    std::env::temp_dir().join("vigil-cuda")
}

/// Cache key: SHA-256 over the source text, the architecture and the NVRTC version.
pub fn cache_key(source: &str, arch: &str, nvrtc: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(COMMON.as_bytes());
    h.update([0]);
    h.update(source.as_bytes());
    h.update([0]);
    h.update(arch.as_bytes());
    h.update(format!("/nvrtc{}.{}", nvrtc.0, nvrtc.1).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// PTX for `source` on `arch`, from `dir` when present, else compiled and stored there. A
/// cache that cannot be written only costs a recompile next time (the error is not fatal).
pub fn compile_cached(dir: &Path, source_name: &str, source: &str, arch: &'static str) -> Result<String, CudaError> {
    let key = cache_key(source, arch, nvrtc_version()?);
    let path = dir.join(format!("{key}.ptx"));
    if let Ok(ptx) = std::fs::read_to_string(&path)
        && ptx.contains(".entry")
    {
        return Ok(ptx);
    }
    let ptx = compile(source_name, source, arch)?;
    if std::fs::create_dir_all(dir).is_ok() {
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, &ptx).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(ptx)
}

/// The virtual architecture NVRTC targets for a compute capability (`compute_86` for 8.6).
/// Capabilities are mapped onto a fixed table so the name can be `'static`.
pub fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, _) => "compute_100",
        (12, _) => "compute_120",
        (m, _) if m > 12 => "compute_120",
        (8, _) => "compute_80",
        _ => "compute_75",
    }
}
