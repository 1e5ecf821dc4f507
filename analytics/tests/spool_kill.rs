//! `kill -9` at random moments while a child process writes and drains the spool: afterwards
//! no report file is corrupt, no report id is duplicated, and every report the child had
//! acknowledged is still in the spool or was sent.
//!
//! The child is this same test binary re-run on `child_spool_writer` with
//! `VIGIL_SPOOL_CHILD` set; it prints `committed <id>` after each durable push and
//! `sent <id>` before deleting the oldest report (as the uploader does after a PUT).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use analytics::spool::{Spool, SpoolLimits, SpoolRecord, list};
use rand::Rng;

const ENV: &str = "VIGIL_SPOOL_CHILD";
const LIMITS: SpoolLimits = SpoolLimits { max_bytes: 1 << 30, max_age_secs: 1 << 40 };

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Child entry point: does nothing unless started by `kill_9_never_corrupts_or_duplicates`.
#[test]
fn child_spool_writer() {
    let Some(dir) = std::env::var_os(ENV) else {
        eprintln!("child_spool_writer: helper process of kill_9_never_corrupts_or_duplicates; nothing to do when run directly");
        return;
    };
    let dir = Path::new(&dir);
    let mut spool = Spool::open(dir, LIMITS).unwrap();
    let mut out = std::io::stdout();
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(20) {
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        let rec = SpoolRecord { report_id: id, created_secs: 1_000 + i, window_index: i, dap_time_secs: 0, measurement: vec![i; 55] };
        spool.push(&rec, 1_000 + i).unwrap();
        writeln!(out, "committed {}", hex(&id)).unwrap();
        out.flush().unwrap();
        if i % 3 == 2 {
            let e = spool.entries().unwrap().remove(0);
            let r = spool.read(&e).unwrap();
            writeln!(out, "sent {}", hex(&r.report_id)).unwrap();
            out.flush().unwrap();
            spool.mark_uploaded(&e).unwrap();
        }
        i += 1;
    }
}

#[test]
fn kill_9_never_corrupts_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed = HashSet::new();
    let mut sent = HashSet::new();
    let mut rng = rand::rng();
    let rounds = 12;
    for _ in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_spool_writer", "--nocapture", "--test-threads", "1"])
            .env(ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            if let Some(id) = line.strip_prefix("committed ") {
                committed.insert(id.to_string());
            } else if let Some(id) = line.strip_prefix("sent ") {
                sent.insert(id.to_string());
            }
        }
        // After every crash the spool opens clean.
        let s = Spool::open(dir.path(), LIMITS).unwrap();
        assert_eq!(s.counters().corrupt, 0, "corrupt report after kill -9");
    }
    assert!(committed.len() > 20, "child made too little progress to test anything: {}", committed.len());
    let mut in_spool: HashMap<String, usize> = HashMap::new();
    let s = Spool::open(dir.path(), LIMITS).unwrap();
    for e in list(dir.path()).unwrap() {
        let r = s.read(&e).expect("every spooled file parses");
        *in_spool.entry(hex(&r.report_id)).or_default() += 1;
    }
    assert!(in_spool.values().all(|&n| n == 1), "duplicated report id in the spool");
    for id in &committed {
        assert!(in_spool.contains_key(id) || sent.contains(id), "acknowledged report {id} lost");
    }
    // A report can be both sent and still spooled only when a kill fell between the PUT and
    // the delete; the DAP aggregator drops the re-send by report id.
    let both = sent.iter().filter(|id| in_spool.contains_key(*id)).count();
    assert!(both <= rounds, "{both} reports sent and still spooled");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "temp files left after open");
    eprintln!("kill -9 x{rounds}: {} committed, {} sent, {} spooled, {both} sent-and-spooled", committed.len(), sent.len(), in_spool.len());
}
