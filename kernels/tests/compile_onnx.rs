//! ONNX import, BN folding, quantisation and the FP32 interpreter.
//!
//! Models are built here as protobuf (the importer's own `onnx_proto` declarations), so these
//! tests need no Python; the comparison with ONNX Runtime reads a reference output committed
//! by `tools/make_reference.py`.

use kernels::backend::Backend;
use kernels::compile::{self, VariantChoice};
use kernels::cpu_ref::CpuRef;
use kernels::fp32::{Interpreter, Tensor};
use kernels::onnx::{self, ImportOptions, OnnxError, Shape};
use kernels::onnx_proto as pb;
use kernels::plan::{Candidates, Tier};
use kernels::quantize::{self, Method, VariantSpec};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn dim(v: i64) -> pb::Dimension {
    pb::Dimension { value: Some(pb::DimValue::DimValue(v)) }
}

fn value_info(name: &str, dims: Vec<pb::Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto { tensor_type: Some(pb::TypeProtoTensor { elem_type: pb::data_type::FLOAT, shape: Some(pb::TensorShapeProto { dim: dims }) }) }),
    }
}

fn init(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        dims: dims.to_vec(),
        data_type: pb::data_type::FLOAT,
        name: name.into(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

fn float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 1, f: v, ..Default::default() }
}

fn string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        domain: String::new(),
        attribute,
    }
}

/// A graph builder that tracks channel counts and adds random weights.
struct G {
    rng: ChaCha8Rng,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    n: usize,
}

impl G {
    fn new(seed: u64) -> G {
        G { rng: ChaCha8Rng::seed_from_u64(seed), nodes: Vec::new(), inits: Vec::new(), n: 0 }
    }

    fn rand(&mut self, n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.random_range(-amp..amp)).collect()
    }

    fn name(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    fn conv(&mut self, x: &str, ic: usize, oc: usize, k: usize, stride: usize, groups: usize) -> String {
        let (w, b, y) = (self.name("w"), self.name("b"), self.name("conv"));
        let fan = (ic / groups * k * k) as f32;
        let wd = self.rand(oc * ic / groups * k * k, 1.5 / fan.sqrt());
        let bd = self.rand(oc, 0.1);
        self.inits.push(init(&w, &[oc as i64, (ic / groups) as i64, k as i64, k as i64], &wd));
        self.inits.push(init(&b, &[oc as i64], &bd));
        let p = (k / 2) as i64;
        let attrs = vec![ints("kernel_shape", &[k as i64, k as i64]), ints("strides", &[stride as i64; 2]), ints("pads", &[p, p, p, p]), int("group", groups as i64)];
        self.nodes.push(node("Conv", &y, &[x, &w, &b], &[&y], attrs));
        y
    }

    fn bn(&mut self, x: &str, c: usize) -> String {
        let names: Vec<String> = (0..4).map(|_| self.name("bn_p")).collect();
        let y = self.name("bn");
        let gamma: Vec<f32> = (0..c).map(|_| self.rng.random_range(0.5..1.5)).collect();
        let beta = self.rand(c, 0.3);
        let mean = self.rand(c, 0.3);
        let var: Vec<f32> = (0..c).map(|_| self.rng.random_range(0.2..2.0)).collect();
        for (n, d) in names.iter().zip([gamma, beta, mean, var]) {
            self.inits.push(init(n, &[c as i64], &d));
        }
        self.nodes.push(node("BatchNormalization", &y, &[x, &names[0], &names[1], &names[2], &names[3]], &[&y], vec![float("epsilon", 1e-5)]));
        y
    }

    fn unary(&mut self, op: &str, x: &str, attrs: Vec<pb::AttributeProto>, extra: &[&str]) -> String {
        let y = self.name(&op.to_lowercase());
        let mut ins = vec![x];
        ins.extend_from_slice(extra);
        self.nodes.push(node(op, &y, &ins, &[&y], attrs));
        y
    }

    fn relu6(&mut self, x: &str) -> String {
        let (lo, hi) = (self.name("lo"), self.name("hi"));
        self.inits.push(init(&lo, &[], &[0.0]));
        self.inits.push(init(&hi, &[], &[6.0]));
        self.unary("Clip", x, vec![], &[&lo, &hi])
    }

    fn binary(&mut self, op: &str, a: &str, b: &str, attrs: Vec<pb::AttributeProto>) -> String {
        let y = self.name(&op.to_lowercase());
        self.nodes.push(node(op, &y, &[a, b], &[&y], attrs));
        y
    }

    fn model(self, input: pb::ValueInfoProto, outputs: &[(&str, &str)]) -> Vec<u8> {
        let mut nodes = self.nodes;
        let mut out_vi = Vec::new();
        for (from, to) in outputs {
            nodes.push(node("Identity", &format!("out_{to}"), &[from], &[to], vec![]));
            out_vi.push(pb::ValueInfoProto { name: to.to_string(), r#type: None });
        }
        let m = pb::ModelProto {
            ir_version: 9,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            producer_name: "vigil-test".into(),
            producer_version: String::new(),
            graph: Some(pb::GraphProto { node: nodes, name: "g".into(), initializer: self.inits, input: vec![input], output: out_vi, value_info: vec![] }),
        };
        m.encode_to_vec()
    }
}

fn image_input(h: i64, w: i64) -> pb::ValueInfoProto {
    value_info("image", vec![dim(1), dim(3), dim(h), dim(w)])
}

/// A small CenterNet-shaped detector using every supported op: stride-4 heads `heatmap`
/// (sigmoid, 4 classes) and `box` (5 channels).
fn tiny_detector(seed: u64, h: i64, w: i64) -> Vec<u8> {
    let mut g = G::new(seed);
    let x = g.conv("image", 3, 8, 3, 2, 1);
    let x = g.bn(&x, 8);
    let x = g.relu6(&x);
    let p = g.unary("MaxPool", &x, vec![ints("kernel_shape", &[3, 3]), ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])], &[]); // /4
    let d = g.conv(&p, 8, 8, 3, 1, 8); // depthwise
    let d = g.bn(&d, 8);
    let d = g.unary("Relu", &d, vec![], &[]);
    let pw = g.conv(&d, 8, 8, 1, 1, 1);
    let r = g.binary("Add", &p, &pw, vec![]);
    let lo = g.conv(&r, 8, 16, 3, 2, 1); // /8
    let lo = g.unary("LeakyRelu", &lo, vec![float("alpha", 0.1)], &[]);
    let scales = g.name("scales");
    let roi = g.name("roi");
    g.inits.push(init(&scales, &[4], &[1.0, 1.0, 2.0, 2.0]));
    g.inits.push(init(&roi, &[0], &[]));
    let up = g.name("up");
    g.nodes.push(node("Resize", &up, &[&lo, &roi, &scales], &[&up], vec![string("mode", "nearest"), string("coordinate_transformation_mode", "asymmetric"), string("nearest_mode", "floor")]));
    let cat = g.binary("Concat", &r, &up, vec![int("axis", 1)]);
    let f = g.conv(&cat, 24, 16, 3, 1, 1);
    let f = g.unary("Relu", &f, vec![], &[]);
    let hm = g.conv(&f, 16, 4, 1, 1, 1);
    let hm = g.unary("Sigmoid", &hm, vec![], &[]);
    let bx = g.conv(&f, 16, 5, 1, 1, 1);
    g.model(image_input(h, w), &[(&hm, "heatmap"), (&bx, "box")])
}

fn random_frame(rng: &mut ChaCha8Rng, w: usize, h: usize) -> Vec<u8> {
    // Smooth-ish content: random blocks, so convolutions see structure, plus noise.
    let mut f = vec![0u8; w * h * 3];
    let bw = 8;
    let blocks: Vec<u8> = (0..(w / bw + 1) * (h / bw + 1) * 3).map(|_| rng.random()).collect();
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let b = blocks[((y / bw) * (w / bw + 1) + x / bw) * 3 + c];
                f[(y * w + x) * 3 + c] = b.saturating_add(rng.random_range(0..16));
            }
        }
    }
    f
}

#[test]
fn garbage_bytes_are_clear_errors_not_panics() {
    let valid = tiny_detector(1, 32, 64);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"definitely not a protobuf".to_vec(), valid[..valid.len() / 2].to_vec()];
    for _ in 0..50 {
        let n = rng.random_range(1..2000);
        cases.push((0..n).map(|_| rng.random()).collect());
    }
    // Bit flips of a valid model: must be an error or a (different) graph, never a panic.
    for _ in 0..50 {
        let mut m = valid.clone();
        let i = rng.random_range(0..m.len());
        m[i] ^= 1 << rng.random_range(0..8);
        let _ = onnx::import(&m, ImportOptions::default());
    }
    for (i, c) in cases.iter().enumerate() {
        let e = onnx::import(c, ImportOptions::default()).expect_err(&format!("case {i} imported"));
        let msg = e.to_string();
        assert!(msg.contains("ONNX") || msg.contains("graph") || msg.contains("node"), "case {i}: unclear error {msg:?}");
    }
    let e = onnx::import(&valid[..valid.len() / 2], ImportOptions::default()).unwrap_err();
    assert!(matches!(e, OnnxError::Decode(_)), "truncated model: {e}");
}

#[test]
fn unsupported_op_error_names_node_and_op() {
    let mut g = G::new(2);
    let x = g.conv("image", 3, 4, 3, 1, 1);
    g.nodes.push(node("Softmax", "class_softmax", &[&x], &["sm"], vec![int("axis", 1)]));
    let m = g.model(image_input(8, 8), &[("sm", "out")]);
    let e = onnx::import(&m, ImportOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::UnsupportedOp { index: 1, .. }), "{msg}");
    assert!(msg.contains("class_softmax") && msg.contains("Softmax"), "{msg}");
    // A supported op with an unsupported attribute names the node and the reason.
    let mut g = G::new(3);
    let x = g.conv("image", 3, 4, 3, 1, 1);
    g.nodes.push(node("MaxPool", "pool_ceil", &[&x], &["p"], vec![ints("kernel_shape", &[2, 2]), int("ceil_mode", 1)]));
    let msg = onnx::import(&g.model(image_input(8, 8), &[("p", "out")]), ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("pool_ceil") && msg.contains("ceil_mode"), "{msg}");
}

#[test]
fn dynamic_shapes_are_refused_with_the_dimension_named() {
    let mut g = G::new(4);
    let x = g.conv("image", 3, 4, 3, 1, 1);
    let sym = pb::Dimension { value: Some(pb::DimValue::DimParam("batch".into())) };
    let m = g.model(value_info("image", vec![sym, dim(3), dim(16), dim(16)]), &[(&x, "out")]);
    let e = onnx::import(&m, ImportOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::DynamicShape { dim: 0, .. }), "{msg}");
    assert!(msg.contains("image") && msg.contains("batch"), "{msg}");
    let mut g = G::new(4);
    let x = g.conv("image", 3, 4, 3, 1, 1);
    let m = g.model(value_info("image", vec![dim(1), dim(3), dim(-1), dim(16)]), &[(&x, "out")]);
    assert!(matches!(onnx::import(&m, ImportOptions::default()), Err(OnnxError::DynamicShape { dim: 2, .. })));
}

#[test]
fn batch_norm_folding_preserves_fp32_outputs() {
    for seed in 0..4 {
        let m = tiny_detector(seed, 32, 48);
        let g = onnx::import(&m, ImportOptions::default()).unwrap();
        let folded = quantize::fold_batch_norm(&g);
        let n_bn = |g: &onnx::Graph| g.nodes.iter().filter(|n| n.op.kind() == "BatchNormalization").count();
        assert_eq!(n_bn(&g), 2);
        assert_eq!(n_bn(&folded), 0, "every BN follows a conv and must be folded");
        assert_eq!(folded.nodes.len(), g.nodes.len() - 2);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let input = Tensor::from_rgb8(&random_frame(&mut rng, 48, 32), 32, 48);
        let a = Interpreter::new(&g).run(input.clone());
        let b = Interpreter::new(&folded).run(input);
        for (x, y) in a.iter().zip(&b) {
            let scale = x.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = x.data.iter().zip(&y.data).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-4 * scale, "seed {seed}: folded output differs by {worst} (scale {scale})");
        }
    }
}

#[test]
fn quantised_tiny_detector_tracks_fp32_layer_by_layer() {
    let (h, w) = (32usize, 64usize);
    let m = tiny_detector(11, h as i64, w as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let frames: Vec<Vec<u8>> = (0..6).map(|_| random_frame(&mut rng, w, h)).collect();
    for method in [Method::MinMax, Method::Percentile, Method::Mse, Method::Entropy] {
        let choice = VariantChoice {
            spec: VariantSpec { name: "full".into(), tier: Tier::Full, camera: (w as u32, h as u32), score_threshold: 0.05, max_candidates: 50 },
            input_hw: (h, w),
        };
        let c = compile::compile_variant(&m, &choice, &frames, method, &mut |_, _| {}).unwrap();
        c.plan.validate().unwrap();
        let kinds: Vec<&str> = c.plan.ops.iter().map(|o| o.kind()).collect();
        for k in ["Conv", "MaxPool", "Add", "Concat", "ResizeNearest", "Lut"] {
            assert!(kinds.contains(&k), "{method:?}: no {k} op in {kinds:?}");
        }
        // Relu / Clip after conv are fused: the plan has exactly two LUTs (LeakyRelu, Sigmoid).
        assert_eq!(kinds.iter().filter(|k| **k == "Lut").count(), 2, "{kinds:?}");
        // Entropy calibration trades clipping error for resolution (KL, not MSE): a lower floor.
        let floor = if method == Method::Entropy { 10.0 } else { 15.0 };
        for l in &c.layers {
            assert!(l.sqnr_db > floor, "{method:?}: layer {} ({}) SQNR {:.1} dB", l.name, l.op, l.sqnr_db);
        }
        // The plan runs on cpu-ref and on the fast backend with identical candidates.
        let mut out_ref = [Candidates::with_capacity(50)];
        let mut out_cpu = [Candidates::with_capacity(50)];
        let mut r = CpuRef;
        let mut pr = r.prepare(&c.plan, 1).unwrap();
        let mut f = kernels::cpu::Cpu::new(2);
        let mut pf = f.prepare(&c.plan, 1).unwrap();
        for fr in &frames {
            r.run(&mut pr, &[fr], &mut out_ref).unwrap();
            f.run(&mut pf, &[fr], &mut out_cpu).unwrap();
            assert_eq!(out_ref, out_cpu);
        }
    }
}

#[test]
fn empty_calibration_is_a_clear_error() {
    let m = tiny_detector(1, 16, 32);
    let choice = VariantChoice {
        spec: VariantSpec { name: "full".into(), tier: Tier::Full, camera: (32, 16), score_threshold: 0.05, max_candidates: 10 },
        input_hw: (16, 32),
    };
    let e = compile::compile_variant(&m, &choice, &[], Method::MinMax, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("calibration"), "{e}");
    let e = compile::compile_variant(&m, &choice, &[vec![0u8; 10]], Method::MinMax, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("10 bytes"), "{e}");
}

#[test]
fn input_size_override_rederives_shapes() {
    let m = tiny_detector(1, 64, 128);
    let g = onnx::import(&m, ImportOptions { input_hw: Some((32, 64)) }).unwrap();
    let hm = g.output_named("heatmap").unwrap();
    assert_eq!(g.values[hm].shape, Shape { c: 4, h: 8, w: 16 });
    // 36 x 64 is not a multiple of the total stride: the upsample no longer lines up.
    let e = onnx::import(&m, ImportOptions { input_hw: Some((36, 64)) });
    assert!(e.is_err(), "36x64 should not import: concat of 9x16 and 10x16");
}

/// Root of the repository (the committed model lives in `models/`).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn fp32_interpreter_matches_onnx_runtime_on_the_committed_model() {
    let root = repo_root();
    let (model, reference) = (root.join("models/vigil_det.onnx"), root.join("models/vigil_det.ref.json"));
    if !model.exists() || !reference.exists() {
        eprintln!("SKIPPED: {} or {} is missing (run tools/train.sh and tools/make_reference.py)", model.display(), reference.display());
        return;
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
    let (h, w) = (r["input_hw"][0].as_u64().unwrap() as usize, r["input_hw"][1].as_u64().unwrap() as usize);
    let g = onnx::import(&std::fs::read(&model).unwrap(), ImportOptions::default()).unwrap();
    // The reference input is defined by formula (tools/make_reference.py).
    let rgb: Vec<u8> = (0..h * w * 3).map(|i| ((i / 3 % w) * 7 + (i / 3 / w) * 13 + (i % 3) * 29 + (i / 3 % w) * (i / 3 / w) % 11) as u8).collect();
    let outs = Interpreter::new(&g).run(Tensor::from_rgb8(&rgb, h, w));
    let step = r["stride"].as_u64().unwrap() as usize;
    let tol = r["tolerance"].as_f64().unwrap() as f32;
    for (name, t) in ["heatmap", "box"].iter().zip(&outs) {
        let want: Vec<f32> = r[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        // Reference values are NCHW, flattened, every `step`-th element.
        let (c, hh, ww) = (t.shape.c, t.shape.h, t.shape.w);
        let mut worst = 0f32;
        for (k, &v) in want.iter().enumerate() {
            let i = k * step;
            let (ch, y, x) = (i / (hh * ww), i / ww % hh, i % ww);
            assert!(ch < c, "{name}: reference longer than the output");
            worst = worst.max((t.at(y, x, ch) - v).abs());
        }
        assert!(worst <= tol, "{name}: FP32 interpreter differs from ONNX Runtime by {worst} (tolerance {tol})");
    }
}
