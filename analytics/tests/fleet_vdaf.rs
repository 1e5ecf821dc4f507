//! Fleet side with `prio`'s VDAF API, leader and helper in one process: shard on the
//! vehicles, prepare (both aggregators), aggregate, unshard. The collector's result equals
//! the true sum within the DP noise, and either aggregator's share alone is indistinguishable
//! from uniform random bytes, whatever the measurements were.

use analytics::dap::vdaf;
use analytics::metrics::Layout;
use analytics::privacy::{PrivacyParams, clip_l1, decode_aggregate, noise_and_encode, to_micro};
use prio::codec::Encode;
use prio::vdaf::{Aggregator, Client, Collector, PrepareTransition};
use rand::Rng;

const BITS: u32 = 24;

fn params() -> PrivacyParams {
    PrivacyParams { epsilon_per_report_micro: to_micro(1.0), epsilon_per_day_micro: to_micro(1.0), l1_clip: 4096, bits: BITS, dangerous_disable_noise: false }
}

/// Runs one batch through shard → prepare → aggregate; returns both aggregate shares (encoded)
/// and the collector's unsharded sum.
fn run_batch(measurements: &[Vec<u64>]) -> (Vec<u8>, Vec<u8>, Vec<u128>) {
    let vdaf = vdaf(BITS, Layout::LEN).unwrap();
    let mut rng = rand::rng();
    let mut verify_key = [0u8; 16];
    rng.fill(&mut verify_key);
    let (mut out0, mut out1) = (Vec::new(), Vec::new());
    for m in measurements {
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        let m: Vec<u128> = m.iter().map(|&x| x as u128).collect();
        // Vehicle.
        let (public, shares) = vdaf.shard(&m, &nonce).unwrap();
        // Leader (0) and helper (1), each with only its own share.
        let (st0, ps0) = vdaf.prepare_init(&verify_key, 0, &(), &nonce, &public, &shares[0]).unwrap();
        let (st1, ps1) = vdaf.prepare_init(&verify_key, 1, &(), &nonce, &public, &shares[1]).unwrap();
        let msg = vdaf.prepare_shares_to_prepare_message(&(), [ps0, ps1]).unwrap();
        match (vdaf.prepare_next(st0, msg.clone()).unwrap(), vdaf.prepare_next(st1, msg).unwrap()) {
            (PrepareTransition::Finish(a), PrepareTransition::Finish(b)) => {
                out0.push(a);
                out1.push(b);
            }
            _ => panic!("Prio3 prepares in one round"),
        }
    }
    let agg0 = vdaf.aggregate(&(), out0).unwrap();
    let agg1 = vdaf.aggregate(&(), out1).unwrap();
    let (b0, b1) = (agg0.get_encoded().unwrap(), agg1.get_encoded().unwrap());
    let sum = vdaf.unshard(&(), [agg0, agg1], measurements.len()).unwrap();
    (b0, b1, sum)
}

/// Chi-square statistic of the byte histogram against uniform.
fn chi_square(bytes: &[u8]) -> f64 {
    let mut h = [0f64; 256];
    for &b in bytes {
        h[b as usize] += 1.0;
    }
    let e = bytes.len() as f64 / 256.0;
    h.iter().map(|&o| (o - e) * (o - e) / e).sum()
}

#[test]
fn collector_gets_the_true_sum_within_dp_noise() {
    let p = params();
    let mut rng = rand::rng();
    let n = 40;
    let mut truth = vec![0i128; Layout::LEN];
    let mut encoded = Vec::new();
    for _ in 0..n {
        let mut v: Vec<u64> = (0..Layout::LEN).map(|_| rng.random_range(0..200)).collect();
        clip_l1(&mut v, p.l1_clip);
        for (t, x) in truth.iter_mut().zip(&v) {
            *t += *x as i128;
        }
        encoded.push(noise_and_encode(&v, &p, &mut rand08::rngs::OsRng).unwrap());
    }
    let (_, _, sum) = run_batch(&encoded);
    let got = decode_aggregate(&sum, n as u64, &p);
    let sigma = p.noise_std() * (n as f64).sqrt();
    let mut sq = 0.0;
    for i in 0..Layout::LEN {
        let err = (got[i] - truth[i]) as f64;
        assert!(err.abs() < 7.0 * sigma, "coordinate {i}: error {err} vs sigma {sigma}");
        sq += (err / sigma).powi(2);
    }
    // The errors really are noise of the calibrated size: mean square of z-scores near 1.
    let ms = sq / Layout::LEN as f64;
    assert!((0.3..3.0).contains(&ms), "mean squared z {ms}");
}

#[test]
fn each_aggregator_share_alone_looks_uniform() {
    // Two very different fleets: all zeros and all maximal values (after offset encoding).
    let lo = vec![vec![0u64; Layout::LEN]; 8];
    let hi = vec![vec![(1u64 << BITS) - 1; Layout::LEN]; 8];
    let (mut l_lo, mut h_lo, mut l_hi, mut h_hi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..12 {
        let (a, b, sum) = run_batch(&lo);
        assert!(sum.iter().all(|&s| s == 0));
        l_lo.extend(a);
        h_lo.extend(b);
        let (a, b, sum) = run_batch(&hi);
        assert!(sum.iter().all(|&s| s == 8 * ((1u128 << BITS) - 1)));
        l_hi.extend(a);
        h_hi.extend(b);
    }
    // 12 batches x 55 field elements x 16 bytes = 10560 bytes per sample; chi-square with
    // 255 degrees of freedom has mean 255 and standard deviation 22.6: 400 is > 6 sd out.
    for (name, bytes) in [("leader/zeros", &l_lo), ("helper/zeros", &h_lo), ("leader/max", &l_hi), ("helper/max", &h_hi)] {
        let c = chi_square(bytes);
        assert!(c < 400.0, "{name}: chi-square {c:.0}: share is not uniform-looking");
    }
    // The plain sums would be nowhere near uniform (control for the statistic itself).
    let plain: Vec<u8> = (0..12 * Layout::LEN).flat_map(|_| (8 * ((1u128 << BITS) - 1)).to_le_bytes()).collect();
    assert!(chi_square(&plain) > 10_000.0);
}
