//! `.vplan` round trips and refuses damaged files with errors that name the field.

use std::sync::Arc;

use kernels::synth::{centernet_lite, random_plan};
use kernels::vplan::{self, VplanError};
use proptest::prelude::*;
use zerocopy::IntoBytes;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_is_exact(seed in any::<u64>()) {
        let plan = random_plan(seed);
        let bytes = vplan::to_bytes(&plan);
        let back = vplan::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &plan);
        prop_assert_eq!(vplan::to_bytes(&back), bytes);
    }

    #[test]
    fn any_flipped_byte_is_refused(seed in any::<u64>(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = vplan::to_bytes(&random_plan(seed));
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(vplan::from_bytes(&bytes).is_err(), "flip at {} accepted", i);
    }

    #[test]
    fn any_truncation_is_refused(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let bytes = vplan::to_bytes(&random_plan(seed));
        let n = cut.index(bytes.len());
        let err = vplan::from_bytes(&bytes[..n]).unwrap_err();
        prop_assert!(matches!(err, VplanError::Truncated { .. }), "cut at {}: {}", n, err);
    }
}

#[test]
fn errors_name_the_field() {
    let bytes = vplan::to_bytes(&random_plan(3));
    let mut b = bytes.clone();
    b[0] = b'X';
    let e = vplan::from_bytes(&b).unwrap_err().to_string();
    assert!(e.contains("bad magic at offset 0"), "{e}");
    let mut b = bytes.clone();
    b[8] = 9;
    let e = vplan::from_bytes(&b).unwrap_err().to_string();
    assert!(e.contains("unsupported .vplan version 9") && e.contains("offset 8"), "{e}");
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0x55;
    let e = vplan::from_bytes(&b).unwrap_err().to_string();
    assert!(e.contains("sha256 mismatch"), "{e}");
    let e = vplan::from_bytes(&bytes[..100]).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("header"), "{e}");
    let e = vplan::load(std::path::Path::new("/nonexistent/x.vplan")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/x.vplan"), "{e}");
}

#[test]
fn a_valid_checksum_over_an_invalid_plan_is_still_refused() {
    // Re-sign a file whose op references a tensor that does not exist: the checksum passes,
    // validation must not.
    let plan = random_plan(11);
    let mut bad = plan.clone();
    if let Some(kernels::plan::Op::Conv(c)) = bad.ops.first_mut() {
        c.input = kernels::plan::TensorId(9999);
    } else {
        bad.input = kernels::plan::TensorId(9999);
    }
    let e = vplan::from_bytes(&vplan::to_bytes(&bad)).unwrap_err().to_string();
    assert!(e.contains("9999"), "{e}");
}

#[test]
fn load_views_weights_in_the_file_buffer() {
    let plan = centernet_lite(64, 96, 1).unwrap();
    let bytes = vplan::to_bytes(&plan);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.vplan");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(vplan::load(&path).unwrap(), plan);

    let mut buf = vec![0u64; bytes.len().div_ceil(8)];
    buf.as_mut_bytes()[..bytes.len()].copy_from_slice(&bytes);
    let buf = Arc::new(buf);
    let range = buf.as_bytes().as_ptr_range();
    let loaded = vplan::from_aligned(buf.clone(), bytes.len()).unwrap();
    let blob = loaded.blob.bytes().as_ptr_range();
    assert!(range.start <= blob.start && blob.end <= range.end, "blob was copied out of the file buffer");
    assert!(!loaded.blob.is_empty());
}
