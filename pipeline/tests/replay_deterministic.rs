//! `vigil replay --deterministic` at the library level: a short synthetic log through the
//! whole runtime on a virtual clock gives byte-identical output files run after run and
//! backend after backend (`cpu` twice, `cpu-ref`, and `wgsl` when built with `--features
//! wgpu` and an adapter exists), and the file holds annotations for every camera, tracked
//! objects and snapshots.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::OnceLock;

use kernels::backend::Backend;
use kernels::plan::Plan;
use pipeline::deterministic::{ExecModel, Options, Summary, annotations_topic, replay_deterministic, replay_summary};
use pipeline::detector::PlanDetector;
use pipeline::record::{ImageEncoding, RecordOptions, record_synthetic};
use rig::Rig;

const FPS: f64 = 12.0;
const SECONDS: f64 = 1.5;

/// The synthetic log, recorded once per test binary (rendering is the slow part).
fn log() -> &'static [u8] {
    static LOG: OnceLock<Vec<u8>> = OnceLock::new();
    LOG.get_or_init(|| {
        let t = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.mcap");
        let opts = RecordOptions { seconds: SECONDS, seed: 11, fps: FPS, cameras: Vec::new(), images: ImageEncoding::Raw };
        record_synthetic(&Rig::builtin(), &opts, &path, &mut |_, _| {}).expect("recording the synthetic log");
        eprintln!("recorded the log in {:?}", t.elapsed());
        std::fs::read(&path).unwrap()
    })
}

/// A floor-sized random-weight plan for the rig's 640x384 cameras.
fn plan() -> Plan {
    let mut p = kernels::synth::centernet_lite(96, 160, 3).unwrap();
    p.preprocess.src_w = 640;
    p.preprocess.src_h = 384;
    p
}

fn options() -> Options {
    // 20 ms per frame against 96 frames/s of demand: about twice what fits, so the executor
    // skips frames and the ladder sheds the rear cameras' rate (a schedule worth checking), and
    // the scalar `cpu-ref` runs only about 75 frames.
    let mut o = Options::new(Rig::builtin(), ExecModel::uniform(scheduler::clock::millis(20), 1));
    o.model_name = "centernet-lite 96x160 random weights (test)".into();
    o
}

fn replay<B: Backend>(backend: B) -> (Vec<u8>, Summary) {
    let t = std::time::Instant::now();
    let name = backend.name();
    let det = PlanDetector::new(backend, vec![plan()], 7).unwrap();
    let mut out = Cursor::new(Vec::new());
    let summary = replay_deterministic(log(), det, &options(), &mut out, &mut |_, _| {}).unwrap();
    eprintln!("replayed on {name} in {:?}", t.elapsed());
    (out.into_inner(), summary)
}

/// The `cpu` output, computed once per test binary.
fn cpu_output() -> &'static (Vec<u8>, Summary) {
    static OUT: OnceLock<(Vec<u8>, Summary)> = OnceLock::new();
    OUT.get_or_init(|| replay(kernels::cpu::Cpu::new(2)))
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i} ({} vs {} bytes)", a.len(), b.len()),
        None => format!("one is a prefix of the other ({} vs {} bytes)", a.len(), b.len()),
    }
}

#[test]
fn two_cpu_replays_write_identical_bytes() {
    let (a, sa) = cpu_output();
    // A different thread count must not matter either.
    let (b, sb) = replay(kernels::cpu::Cpu::new(1));
    assert_eq!(sa, &sb);
    assert!(a == &b, "two deterministic replays differ: {}", first_difference(a, &b));
}

#[test]
fn cpu_ref_writes_the_same_bytes_as_cpu() {
    let (a, sa) = cpu_output();
    let (b, sb) = replay(kernels::cpu_ref::CpuRef);
    assert_eq!(sa, &sb);
    assert!(a == &b, "cpu-ref and cpu outputs differ: {}", first_difference(a, &b));
}

#[test]
fn the_output_holds_annotations_for_every_camera_objects_and_snapshots() {
    let (bytes, summary) = cpu_output();
    eprint!("{}", summary.table());
    let rig = Rig::builtin();
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_seq: BTreeMap<String, u32> = BTreeMap::new();
    let mut schemas: BTreeMap<String, String> = BTreeMap::new();
    let mut snapshot_objects = 0u64;
    for m in mcap::MessageStream::new(bytes).expect("the output parses as MCAP") {
        let m = m.expect("every message parses");
        let topic = m.channel.topic.clone();
        if let Some(prev) = last_seq.insert(topic.clone(), m.sequence) {
            assert_eq!(m.sequence, prev + 1, "{topic}: sequence numbers are consecutive");
        }
        *per_topic.entry(topic.clone()).or_default() += 1;
        if let Some(s) = &m.channel.schema {
            schemas.insert(topic.clone(), s.name.clone());
        }
        if topic == "/snapshot" {
            let v: serde_json::Value = serde_json::from_slice(&m.data).expect("snapshot JSON");
            assert_eq!(v["model_version"], 7);
            assert_eq!(v["publish_ns"].as_u64(), Some(m.log_time));
            snapshot_objects += v["objects"].as_array().unwrap().len() as u64;
        }
        if topic.ends_with("/annotations") {
            use prost::Message as _;
            let a = foxglove::messages::ImageAnnotations::decode(&m.data[..]).expect("ImageAnnotations protobuf");
            assert_eq!(a.points.len(), a.texts.len());
        }
    }
    assert_eq!(summary.cameras.len(), 8);
    for cam in rig.cameras() {
        let topic = annotations_topic(&cam.name);
        let n = per_topic.get(&topic).copied().unwrap_or(0);
        assert!(n > 0, "no annotation messages for camera {}", cam.name);
        let s = summary.cameras.iter().find(|c| c.name == cam.name).unwrap();
        assert_eq!(n, s.run, "{topic}: one message per on-time result");
        assert_eq!(schemas[&topic], "foxglove.ImageAnnotations");
    }
    let snaps = per_topic.get("/snapshot").copied().unwrap_or(0);
    assert!(snaps >= 1, "no snapshot in the output");
    assert_eq!(snaps, summary.snapshots);
    assert_eq!(per_topic.get("/objects").copied(), Some(snaps));
    assert_eq!(schemas["/objects"], "foxglove.SceneUpdate");
    assert_eq!(schemas["/snapshot"], "vigil.Snapshot");
    assert_eq!(per_topic.values().sum::<u64>(), summary.messages);
    let total: u64 = summary.cameras.iter().map(|c| c.captures).sum();
    let skipped: u64 = summary.cameras.iter().map(|c| c.skipped).sum();
    assert_eq!(total, (SECONDS * FPS) as u64 * 8);
    assert!(skipped > 0, "the modelled load should make the executor skip frames");
    eprintln!("{snaps} snapshots with {snapshot_objects} tracked objects in all, {} detections", summary.detections);

    // The metadata record names the model, never the backend.
    let summary_rec = mcap::Summary::read(bytes).unwrap().expect("a summary section");
    assert_eq!(summary_rec.metadata_indexes.len(), 1);
    let meta = mcap::read::metadata(bytes, &summary_rec.metadata_indexes[0]).unwrap();
    assert_eq!(meta.name, "vigil.replay.deterministic");
    assert!(meta.metadata["model"].contains("centernet-lite"), "{:?}", meta.metadata);
    assert!(meta.metadata.iter().all(|(k, v)| !k.contains("backend") && !v.contains("cpu")), "the backend leaked into the output: {:?}", meta.metadata);

    // Summary only (no --out): same counts, nothing written.
    let det = PlanDetector::new(kernels::cpu::Cpu::new(2), vec![plan()], 7).unwrap();
    let s = replay_summary(log(), det, &options(), &mut |_, _| {}).unwrap();
    assert_eq!(Summary { messages: summary.messages, ..s }, *summary);
}

#[test]
fn a_damaged_log_is_refused_with_its_byte_offset() {
    let mut bytes = log().to_vec();
    // Corrupt a byte in the middle of the first chunk's compressed data.
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    bytes[at + 1] ^= 0xa5;
    let det = PlanDetector::new(kernels::cpu_ref::CpuRef, vec![plan()], 7).unwrap();
    let err = replay_summary(&bytes, det, &options(), &mut |_, _| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("byte offset"), "{msg}");

    let truncated = &log()[..log().len() / 2];
    let det = PlanDetector::new(kernels::cpu_ref::CpuRef, vec![plan()], 7).unwrap();
    let msg = replay_summary(truncated, det, &options(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(msg.contains("byte offset"), "{msg}");
}

#[cfg(feature = "wgpu")]
#[test]
fn wgsl_writes_the_same_bytes_as_cpu() {
    let backend = match kernels::wgsl::WgslBackend::new(&kernels::wgsl::WgslOptions::default()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped: no WGSL adapter here ({e}); install mesa-vulkan-drivers for llvmpipe");
            return;
        }
    };
    eprintln!("wgsl adapter: {}", backend.context().report());
    let (a, sa) = cpu_output();
    let (b, sb) = replay(backend);
    assert_eq!(sa, &sb);
    assert!(a == &b, "wgsl and cpu outputs differ: {}", first_difference(a, &b));
}
