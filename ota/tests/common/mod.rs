//! Shared test fixtures: a synthetic INT8 detector as a tensor archive, and the three
//! kinds of model change the delta comparison and the update tests use.
#![allow(dead_code)]

use ota::artifact::{DType, write_archive};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// One tensor.
#[derive(Clone, Debug)]
pub struct T {
    pub name: String,
    pub dtype: DType,
    pub data: Vec<u8>,
}

/// A model: tensors in file order.
#[derive(Clone, Debug)]
pub struct Model(pub Vec<T>);

impl Model {
    pub fn bytes(&self) -> Vec<u8> {
        let v: Vec<(&str, DType, &[u8])> = self.0.iter().map(|t| (t.name.as_str(), t.dtype, t.data.as_slice())).collect();
        write_archive(&v)
    }
}

/// Roughly normal int8 weights (sum of uniforms), like a quantised conv layer.
fn weights(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let s: i32 = (0..4).map(|_| rng.random_range(-40..=40)).sum();
            s.clamp(-127, 127) as i8 as u8
        })
        .collect()
}

fn scales(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| (rng.random_range(0.001f32..0.02)).to_le_bytes()).collect()
}

fn biases(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| rng.random_range(-20_000i32..20_000).to_le_bytes()).collect()
}

fn layer(rng: &mut ChaCha8Rng, out: &mut Vec<T>, name: &str, cin: usize, cout: usize, k: usize) {
    out.push(T { name: format!("{name}.weight"), dtype: DType::I8, data: weights(rng, cin * cout * k * k) });
    out.push(T { name: format!("{name}.scale"), dtype: DType::F32, data: scales(rng, cout) });
    out.push(T { name: format!("{name}.bias"), dtype: DType::I32, data: biases(rng, cout) });
}

/// A CenterNet-lite shaped detector (about 0.44 M int8 parameters, heads about 3.5%).
/// `width` scales every channel count (1 = full, 0.5 = lite variant).
pub fn detector(seed: u64, width: f32) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = |n: usize| ((n as f32 * width) as usize).max(1);
    let mut t = Vec::new();
    let chans = [3, c(32), c(64), c(64), c(128), c(128), c(128)];
    for i in 0..6 {
        layer(&mut rng, &mut t, &format!("backbone.conv{i}"), chans[i], chans[i + 1], 3);
    }
    head(&mut rng, &mut t, chans[6]);
    Model(t)
}

fn head(rng: &mut ChaCha8Rng, t: &mut Vec<T>, cin: usize) {
    for (name, cout) in [("head.heatmap", 8), ("head.size", 2), ("head.offset", 2), ("head.depth", 1)] {
        layer(rng, t, name, cin, cout, 3);
    }
}

/// A tiny model for fast state-machine tests (same structure, few channels).
pub fn tiny(seed: u64) -> Model {
    detector(seed, 0.125)
}

/// Head-only retrain: every `head.*` tensor replaced, backbone untouched.
pub fn head_only(m: &Model, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Model(m.0.iter().filter(|t| !t.name.starts_with("head.")).cloned().collect());
    let cin = m.0.iter().find(|t| t.name == "backbone.conv5.scale").map(|t| t.data.len() / 4).unwrap_or(128);
    head(&mut rng, &mut out.0, cin);
    out
}

/// Fine-tune: every tensor perturbed slightly (int8 weights +-1 for about a quarter of
/// them, +-2 for 2%; scales by a relative 1e-3; biases by a few units).
pub fn fine_tune(m: &Model, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = m.clone();
    for t in &mut out.0 {
        match t.dtype {
            DType::I8 => {
                for b in &mut t.data {
                    let r: f32 = rng.random();
                    let d = if r < 0.02 { 2 } else if r < 0.27 { 1 } else { 0 };
                    let s = if rng.random::<bool>() { d } else { -d };
                    *b = ((*b as i8) as i32 + s).clamp(-127, 127) as i8 as u8;
                }
            }
            DType::F32 => {
                for c in t.data.chunks_exact_mut(4) {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * (1.0 + rng.random_range(-1e-3f32..1e-3));
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
            DType::I32 => {
                for c in t.data.chunks_exact_mut(4) {
                    let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) + rng.random_range(-8..=8);
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
            _ => {}
        }
    }
    out
}

/// A model whose smoke test fails: one scale is NaN (signed and hashed correctly).
pub fn broken(m: &Model) -> Model {
    let mut out = m.clone();
    if let Some(t) = out.0.iter_mut().find(|t| t.dtype == DType::F32) {
        t.data[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
    }
    out
}
