//! The CUDA sources compile with NVRTC (no GPU needed, only libnvrtc), the PTX cache works,
//! and the backend refuses plainly, without a panic, where no driver is present.
//!
//! Without libnvrtc the NVRTC tests print why and return; `VIGIL_REQUIRE_NVRTC=1` makes that
//! a failure. A libnvrtc comes with the CUDA toolkit, or from the pip package
//! `nvidia-cuda-nvrtc-cu12` (put `site-packages/nvidia/cuda_nvrtc/lib` on LD_LIBRARY_PATH).
#![cfg(feature = "cuda")]

use kernels::cuda::{self, COMMON, SOURCES};

fn nvrtc_or_skip(test: &str) -> bool {
    if cuda::nvrtc_present() {
        return true;
    }
    let msg = format!("SKIPPED: {test}: libnvrtc is not loadable (set LD_LIBRARY_PATH to a CUDA or nvidia-cuda-nvrtc-cu12 lib dir)");
    if std::env::var("VIGIL_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("VIGIL_REQUIRE_NVRTC=1: {msg}");
    }
    eprintln!("{msg}");
    false
}

/// Kernel entry points each source must define, per architecture family.
fn expected_entries(name: &str, arch: &str) -> Vec<&'static str> {
    match name {
        "conv.cu" if arch == "compute_75" => vec!["vigil_conv_generic", "vigil_conv_dp4a"],
        "conv.cu" => vec!["vigil_conv_generic", "vigil_conv_dp4a", "vigil_conv_mma"],
        "elementwise.cu" => vec!["vigil_maxpool", "vigil_resize_nearest", "vigil_lut", "vigil_add", "vigil_concat_part"],
        "preprocess.cu" => vec!["vigil_preprocess"],
        "decode.cu" => vec!["vigil_peaks", "vigil_topk"],
        other => panic!("no expectations for {other}"),
    }
}

#[test]
fn every_source_compiles_for_turing_ampere_and_hopper() {
    if !nvrtc_or_skip("every_source_compiles") {
        return;
    }
    let (major, minor) = cuda::nvrtc_version().unwrap();
    eprintln!("NVRTC {major}.{minor}");
    for arch in ["compute_75", "compute_80", "compute_90"] {
        for (name, src) in SOURCES {
            let ptx = cuda::compile(name, src, arch).unwrap_or_else(|e| panic!("{e}"));
            for entry in expected_entries(name, arch) {
                assert!(ptx.contains(&format!(".entry {entry}(")), "{name} for {arch}: no kernel {entry}");
            }
            if *name == "conv.cu" {
                // The packed paths really use the integer dot-product instructions.
                assert!(ptx.contains("dp4a.s32.s32"), "{arch}: conv without dp4a");
                assert_eq!(ptx.contains("mma.sync.aligned.m16n8k32"), arch != "compute_75", "{arch}: tensor-core path");
            }
        }
    }
}

#[test]
fn a_broken_source_reports_the_file_and_the_compiler_log() {
    if !nvrtc_or_skip("broken_source") {
        return;
    }
    let err = cuda::compile("broken.cu", "extern \"C\" __global__ void k() { undeclared_thing(); }", "compute_80").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("broken.cu") && text.contains("undeclared_thing"), "{text}");
}

#[test]
fn ptx_cache_is_keyed_by_source_and_architecture() {
    if !nvrtc_or_skip("ptx_cache") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (name, src) = SOURCES[2];
    let first = cuda::compile_cached(dir.path(), name, src, "compute_80").unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one cache entry: {files:?}");
    // A second call reads the entry: prove it by planting a marker in the cached text.
    let marked = format!("{first}\n// cached\n");
    std::fs::write(&files[0], &marked).unwrap();
    assert_eq!(cuda::compile_cached(dir.path(), name, src, "compute_80").unwrap(), marked);
    // Another architecture or source is another entry.
    cuda::compile_cached(dir.path(), name, src, "compute_75").unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    let v = cuda::nvrtc_version().unwrap();
    assert_ne!(cuda::cache_key(src, "compute_80", v), cuda::cache_key(&format!("{src} "), "compute_80", v));
    assert!(COMMON.contains("vigil_srdhm"));
}

#[test]
fn backend_without_a_driver_is_an_error_not_a_panic() {
    if cuda::driver_present() {
        eprintln!("SKIPPED: backend_without_a_driver: a CUDA driver is present here");
        return;
    }
    let err = cuda::CudaBackend::new(0).err().expect("no driver, yet the backend started");
    assert!(err.to_string().contains("libcuda"), "{err}");
}
