//! Delta sizes against the generic baselines, on three kinds of model change of a
//! CenterNet-lite shaped INT8 detector (about 0.44 M parameters):
//! head-only retrain, full fine-tune (every weight perturbed slightly), and a new
//! variant (different channel widths). Baselines: zstd of the full file, zstd with the
//! old file as reference prefix (`zstd --patch-from`), and bsdiff (`qbsdiff`).
//!
//! Asserts the targets: head-only delta at most 10% of the full artifact; the
//! fine-tune delta smaller than both patch baselines; every patch reproduces the target.
//! The table is printed (`cargo test -p ota --release --test delta_sizes -- --nocapture`).

mod common;

use std::io::Write as _;

use ota::delta;

const LEVEL: i32 = 19;

fn zstd_full(t: &[u8]) -> usize {
    zstd::bulk::compress(t, LEVEL).unwrap().len()
}

fn zstd_patch_from(base: &[u8], t: &[u8]) -> usize {
    let mut out = Vec::new();
    {
        let mut enc = zstd::stream::write::Encoder::with_ref_prefix(&mut out, LEVEL, base).unwrap();
        // Window must cover the reference, as `zstd --patch-from` sets it.
        let wlog = (usize::BITS - (base.len() + t.len()).leading_zeros()).clamp(10, 27);
        enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(wlog)).unwrap();
        enc.set_parameter(zstd::zstd_safe::CParameter::EnableLongDistanceMatching(true)).unwrap();
        enc.write_all(t).unwrap();
        enc.finish().unwrap();
    }
    // It must decode back.
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(std::io::Cursor::new(&out), base).unwrap();
    dec.window_log_max(27).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut dec, &mut back).unwrap();
    assert_eq!(back, t);
    out.len()
}

fn bsdiff(base: &[u8], t: &[u8]) -> usize {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(base, t).compression_level(9).compare(std::io::Cursor::new(&mut patch)).unwrap();
    let mut back = Vec::new();
    qbsdiff::Bspatch::new(&patch).unwrap().apply(base, std::io::Cursor::new(&mut back)).unwrap();
    assert_eq!(back, t);
    patch.len()
}

struct Row {
    case: &'static str,
    full: usize,
    zstd: usize,
    patch_from: usize,
    bsdiff: usize,
    ours: usize,
}

#[test]
fn tensor_deltas_beat_generic_diffs() {
    let v1 = common::detector(11, 1.0);
    let head = common::head_only(&v1, 12);
    let tune = common::fine_tune(&v1, 13);
    let variant = common::detector(14, 0.75);
    let base = v1.bytes();
    let mut rows = Vec::new();
    for (case, m) in [("head-only retrain", &head), ("full fine-tune", &tune), ("new variant (0.75 width)", &variant)] {
        let t = m.bytes();
        let (patch, stats) = delta::diff(&base, &t).unwrap();
        assert_eq!(delta::apply(&base, &patch).unwrap(), t, "{case}: the patch must reproduce the target");
        println!("{case}: {stats:?}");
        rows.push(Row { case, full: t.len(), zstd: zstd_full(&t), patch_from: zstd_patch_from(&base, &t), bsdiff: bsdiff(&base, &t), ours: patch.len() });
    }
    println!("| change | full | zstd -19 | zstd --patch-from | bsdiff (qbsdiff) | vigil delta | delta / full |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {} | {} | {} | {} | {:.1}% |", r.case, r.full, r.zstd, r.patch_from, r.bsdiff, r.ours, 100.0 * r.ours as f64 / r.full as f64);
    }
    let head = &rows[0];
    assert!(head.ours * 10 <= head.full, "head-only delta {} must be at most 10% of {}", head.ours, head.full);
    let tune = &rows[1];
    assert!(tune.ours < tune.patch_from && tune.ours < tune.bsdiff && tune.ours < tune.zstd, "fine-tune delta {} must beat patch-from {}, bsdiff {} and zstd {}", tune.ours, tune.patch_from, tune.bsdiff, tune.zstd);
    // A new variant shares nothing: the encoder must not do worse than sending it compressed.
    let var = &rows[2];
    assert!(var.ours <= var.zstd + 4096, "new-variant delta {} vs plain zstd {}", var.ours, var.zstd);
}
