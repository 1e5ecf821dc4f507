//! Parsers that face downloaded bytes never panic: arbitrary and mutated tensor
//! archives, delta patches and state records are refused with an error (a patch that
//! still applies must reproduce exactly the hash it states).

mod common;

use ota::artifact::TensorArchive;
use ota::delta;
use ota::slots::SlotStore;
use ota::storage::{SimStorage, Storage as _};
use proptest::prelude::*;

/// Base, target and the patch between them (made once: zstd level 19 is not free).
fn fixtures() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    static F: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let a = common::tiny(1);
        let b = common::fine_tune(&a, 2);
        let (a, b) = (a.bytes(), b.bytes());
        let (p, _) = delta::diff(&a, &b).unwrap();
        (a, b, p)
    })
    .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = TensorArchive::parse(&bytes);
        let _ = delta::apply(b"base", &bytes);
        let _ = delta::base_sha256(&bytes);
    }

    #[test]
    fn mutated_patches_fail_or_reproduce_the_target(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let (a, b, p) = fixtures();
        let mut m = p.clone();
        for (i, v) in edits {
            let i = i.index(m.len());
            m[i] = v;
        }
        if let Ok(out) = delta::apply(&a, &m) {
            prop_assert_eq!(out, b);
        }
    }

    #[test]
    fn mutated_archives_fail_the_trailer_check(i in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (a, _, _) = fixtures();
        let mut m = a.clone();
        let i = i.index(m.len());
        m[i] ^= x;
        prop_assert!(TensorArchive::parse(&m).is_err());
    }

    #[test]
    fn corrupt_state_records_are_refused(i in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (a, _, _) = fixtures();
        use sha2::Digest as _;
        let info = ota::slots::SlotInfo { version: 1, variant: "v".into(), target: String::new(), release: "r".into(), sha256: hex::encode(sha2::Sha256::digest(&a)), length: a.len() as u64 };
        let mut s = SlotStore::provision(SimStorage::new(), &a, info).unwrap().into_storage();
        let mut rec = s.read("state.json").unwrap().unwrap();
        let i = i.index(rec.len());
        rec[i] ^= x;
        s.write("state.json", &rec).unwrap();
        // Either the record no longer parses/verifies, or the flip hit insignificant whitespace.
        if let Ok(mut st) = SlotStore::open(s) {
            prop_assert!(st.boot().is_ok());
        }
    }
}
