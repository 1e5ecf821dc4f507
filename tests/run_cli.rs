//! `vigil run` end to end, through the built binary: the synthetic rig with the live status
//! and exit summary, a replayed log that ends the run, the live Foxglove view on loopback,
//! and clear refusals of bad arguments.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).env("VIGIL_LOG", "info").env("VIGIL_CONFIG", "/nonexistent/vigil.toml").output().expect("run vigil")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn synthetic_run_prints_status_and_summary_and_exits_0() {
    let o = vigil(&["run", "--duration", "4", "--backend", "cpu"]);
    let err = stderr(&o);
    assert!(o.status.success(), "vigil run failed: {err}");
    assert!(err.contains("] fps "), "no live status line: {err}");
    assert!(err.contains("summary over"), "no exit summary: {err}");
    for cam in ["front_main", "rear"] {
        let line = err.lines().find(|l| l.trim_start().starts_with(cam) && l.contains("fps processed")).unwrap_or_else(|| panic!("{cam} missing from the summary: {err}"));
        let fps: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(fps > 0.0, "{cam} processed nothing: {line}");
    }
    assert!(err.contains("worst snapshot age"), "{err}");
    assert!(err.contains("analytics off"), "the missing config file should turn analytics off, said once: {err}");
}

#[test]
fn replayed_log_runs_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("drive.mcap");
    let o = vigil(&["record", "synthetic", "--seconds", "1", "--seed", "3", "--out", log.to_str().unwrap()]);
    assert!(o.status.success(), "record failed: {}", stderr(&o));
    let t = Instant::now();
    let src = format!("replay:{}", log.display());
    let o = vigil(&["run", "--source", &src, "--backend", "cpu", "--duration", "60"]);
    let err = stderr(&o);
    assert!(o.status.success(), "vigil run --source {src} failed: {err}");
    assert!(err.contains("end of the log"), "the run should end with the log: {err}");
    assert!(t.elapsed() < Duration::from_secs(50), "a 1 s log kept the run going for {:?}", t.elapsed());
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    let o = vigil(&["run", "--source", "camera0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("expected `synthetic` or `replay:FILE.mcap`"), "{}", stderr(&o));
    let o = vigil(&["run", "--source", "replay:/nonexistent/drive.mcap"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/drive.mcap"), "the error should name the file: {}", stderr(&o));
    let o = vigil(&["run", "--foxglove", "not-an-address"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--foxglove not-an-address"), "{}", stderr(&o));
}

/// The live view speaks the Foxglove WebSocket protocol on loopback and advertises the
/// camera, object and status channels; the run is not disturbed by a client and exits 0.
#[test]
fn foxglove_live_view_advertises_channels_on_loopback() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(VIGIL)
        .args(["run", "--duration", "12", "--backend", "cpu", "--foxglove", &addr])
        .env("VIGIL_LOG", "info")
        .env("VIGIL_CONFIG", "/nonexistent/vigil.toml")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let stream = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(90) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                let _ = child.kill();
                panic!("no live view on {addr}: {e}");
            }
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}")).unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "foxglove.sdk.v1".parse().unwrap());
    let (mut ws, resp) = tungstenite::client(req, stream).expect("WebSocket handshake");
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()), Some("foxglove.sdk.v1"));
    let mut topics = Vec::new();
    let mut server_info = false;
    while !(server_info && topics.iter().any(|t: &String| t == "/objects")) {
        let msg = ws.read().expect("reading the live view");
        let tungstenite::Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        match v["op"].as_str() {
            Some("serverInfo") => server_info = true,
            Some("advertise") => {
                for ch in v["channels"].as_array().unwrap() {
                    topics.push(ch["topic"].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    let _ = ws.close(None);
    for t in ["/objects", "/status", "/camera/front_main/image", "/camera/front_main/annotations", "/camera/rear/image"] {
        assert!(topics.iter().any(|x| x == t), "{t} not advertised: {topics:?}");
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        err.push_str(&line.unwrap());
        err.push('\n');
    }
    assert!(status.success(), "vigil run --foxglove failed: {err}");
    assert!(err.contains("foxglove: results sent"), "no live-view line in the summary: {err}");
}
