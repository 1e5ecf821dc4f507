//! Runs the python-tuf-generated repository suite (`ota/tests/python`, pytest) against
//! the `vigil-tuf-client` binary that cargo builds for this test.
//!
//! Needs python3 with `tuf`, `securesystemslib` and `pytest` (versions pinned in
//! `ota/tests/python/requirements.txt`). Without them the test prints why and skips,
//! except under CI (`CI` set), where a missing suite is a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn python_tuf_generated_repositories() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let probe = Command::new("python3").args(["-c", "import tuf.api.metadata, securesystemslib.signer, pytest"]).output();
    let available = matches!(&probe, Ok(o) if o.status.success());
    if !available {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("python3 not runnable: {e}"),
        };
        let msg = format!(
            "python TUF suite not run: {why}; install with `pip install -r {}`",
            suite.join("requirements.txt").display()
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&suite)
        .env("VIGIL_TUF_CLIENT", env!("CARGO_BIN_EXE_vigil-tuf-client"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "python TUF suite failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed"), "pytest ran no test:\n{stdout}");
}
