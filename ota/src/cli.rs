//! `vigil ota`: repository tools and the device client on the command line.
//!
//! The same [`Command`] runs as `vigil ota ...` (the root binary) and as the standalone
//! `vigil-ota` binary, which device images without the full runtime and this crate's
//! tests use.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

use crate::artifact::ArchiveSmokeTest;
use crate::client::{self, DeviceConfig, HealthGates, HealthReport, TrialRun, Verdict};
use crate::repo::{DirRemote, Expiry, Keyring, ModelRelease, Repository, VariantArtifact};
use crate::rollout::{DeviceTier, TierReq};
use crate::slots::{SlotInfo, SlotStore};
use crate::storage::FsStorage;
use crate::tuf::transport::{DirStore, Http, write_atomic};
use crate::tuf::updater::{FetchError, FetchKind, Remote};
use crate::tuf::{Limits, Updater};

/// Subcommands of `vigil ota`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Generate signing keys and create an empty repository signed with them.
    ///
    /// Root and targets keys are the offline keys (several, with a threshold); snapshot
    /// and timestamp get one online key each. Keys are written to --keys as
    /// ROLE-I.json (keep the root and targets ones offline).
    Keygen(KeygenArgs),
    /// Publish a model version: add each variant as a target with its tier, make a delta
    /// from the previous version of each variant (kept when smaller than the full file),
    /// set the release's rollout percentage, and sign targets, snapshot and timestamp.
    Publish(PublishArgs),
    /// Change the signed fleet policy: kill switch (--halt/--resume), fleet-wide pin
    /// (--pin VERSION/--unpin), and rollout percentages (--rollout RELEASE=PCT).
    Policy(PolicyArgs),
    /// Sign a new timestamp over the current snapshot (run it before the old one expires).
    RefreshTimestamp(RefreshArgs),
    /// Serve a repository directory over HTTP on a loopback address (tests and demos).
    Serve(ServeArgs),
    /// Create a device directory: trusted root, configuration, and the initial model
    /// committed in slot A.
    Provision(ProvisionArgs),
    /// Show the device's slots, trial and what would boot now.
    Status(DeviceArg),
    /// Refresh signed metadata and say which update (if any) this device would install.
    Check(DeviceArg),
    /// Check, download (delta or full) into the inactive slot, verify against the
    /// signed length and sha256, smoke-test, and switch into a trial.
    Install(DeviceArg),
    /// Boot as the runtime does at start: spend one trial boot (or revert when none are
    /// left) and print the verified model that runs.
    Boot(DeviceArg),
    /// Feed synthetic per-frame health to the running trial and commit or revert by the
    /// health gates (the pipeline does this with real frames).
    Trial(TrialArgs),
    /// Commit the running trial now (the fleet policy is checked first).
    Commit(DeviceArg),
    /// Revert the running trial to last-known-good.
    Rollback(DeviceArg),
    /// Device loop for demos and the kill soak: boot, then repeatedly run the trial or
    /// check and install, feeding synthetic healthy frames.
    Run(RunArgs),
}

/// `keygen` arguments.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Directory for the private keys.
    #[arg(long)]
    pub keys: PathBuf,
    /// Repository directory to create.
    #[arg(long)]
    pub repo: PathBuf,
    /// Number of root keys.
    #[arg(long, default_value_t = 1)]
    pub root_keys: usize,
    /// Root signature threshold.
    #[arg(long, default_value_t = 1)]
    pub root_threshold: u32,
    /// Number of targets keys.
    #[arg(long, default_value_t = 1)]
    pub targets_keys: usize,
    /// Targets signature threshold.
    #[arg(long, default_value_t = 1)]
    pub targets_threshold: u32,
}

/// `publish` arguments.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// Repository directory.
    #[arg(long)]
    pub repo: PathBuf,
    /// Key directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Model version (above every published one).
    #[arg(long)]
    pub version: u64,
    /// Release id for cohorts (default MODEL-VERSION).
    #[arg(long)]
    pub release: Option<String>,
    /// Rollout percentage for this release (1, 10, 50, 100 are the usual stages).
    #[arg(long, default_value_t = 100)]
    pub rollout: u8,
    /// A variant as NAME=PATH (repeatable).
    #[arg(long = "variant", required = true)]
    pub variants: Vec<String>,
    /// A variant's tier as NAME=ACCELERATORS:MIN_MEMORY_MB:MIN_RUNTIME:RANK, accelerators
    /// comma-separated or `any` (e.g. full=cuda:4096:1:10). Default: any device.
    #[arg(long = "tier")]
    pub tiers: Vec<String>,
    /// Do not make deltas.
    #[arg(long)]
    pub no_delta: bool,
}

/// `policy` arguments.
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// Repository directory.
    #[arg(long)]
    pub repo: PathBuf,
    /// Key directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// Turn the kill switch on: no install starts, no trial commits.
    #[arg(long, conflicts_with = "resume")]
    pub halt: bool,
    /// Turn the kill switch off.
    #[arg(long)]
    pub resume: bool,
    /// Pin the fleet to this model version.
    #[arg(long, conflicts_with = "unpin")]
    pub pin: Option<u64>,
    /// Remove the pin.
    #[arg(long)]
    pub unpin: bool,
    /// Set a release's rollout as RELEASE=PCT (repeatable).
    #[arg(long = "rollout")]
    pub rollouts: Vec<String>,
}

/// `refresh-timestamp` arguments.
#[derive(clap::Args, Debug)]
pub struct RefreshArgs {
    /// Repository directory.
    #[arg(long)]
    pub repo: PathBuf,
    /// Key directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// Hours until the new timestamp expires.
    #[arg(long, default_value_t = 24)]
    pub hours: i64,
}

/// `serve` arguments.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Repository directory to serve.
    pub dir: PathBuf,
    /// Loopback address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
}

/// `provision` arguments.
#[derive(clap::Args, Debug)]
pub struct ProvisionArgs {
    /// Device directory to create.
    #[arg(long)]
    pub device: PathBuf,
    /// Trusted root metadata (the repository's metadata/root.json, delivered out of band).
    #[arg(long)]
    pub root: PathBuf,
    /// Vehicle id.
    #[arg(long)]
    pub id: String,
    /// Model name.
    #[arg(long, default_value = "detector")]
    pub model: String,
    /// Repository: http://HOST:PORT base URL or a directory.
    #[arg(long)]
    pub repository: String,
    /// Accelerator of this device: cuda, wgsl or cpu.
    #[arg(long, default_value = "cpu")]
    pub accelerator: String,
    /// Device memory, MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_mb: u64,
    /// Runtime (plan format) version.
    #[arg(long, default_value_t = 1)]
    pub runtime: u32,
    /// Initial model artifact (goes to slot A, committed).
    #[arg(long)]
    pub initial: PathBuf,
    /// Its version.
    #[arg(long)]
    pub initial_version: u64,
    /// Its variant name.
    #[arg(long, default_value = "factory")]
    pub initial_variant: String,
    /// Boots allowed in trial before an uncommitted trial reverts.
    #[arg(long, default_value_t = 3)]
    pub trial_boots: u32,
    /// Healthy frames needed to commit a trial.
    #[arg(long, default_value_t = 300)]
    pub gate_frames: u32,
    /// Latency bound per frame, µs.
    #[arg(long, default_value_t = 33_000)]
    pub gate_latency_us: u64,
    /// Violations allowed per thousand frames.
    #[arg(long, default_value_t = 10)]
    pub gate_violations_per_mille: u32,
}

/// A device directory.
#[derive(clap::Args, Debug)]
pub struct DeviceArg {
    /// Device directory (made by `provision`).
    #[arg(long)]
    pub device: PathBuf,
}

/// `trial` arguments.
#[derive(clap::Args, Debug)]
pub struct TrialArgs {
    /// Device directory.
    #[arg(long)]
    pub device: PathBuf,
    /// Latency reported for every frame, µs.
    #[arg(long, default_value_t = 10_000)]
    pub latency_us: u64,
    /// Report every K-th frame as a deadline miss (0: never).
    #[arg(long, default_value_t = 0)]
    pub miss_every: u32,
    /// Report a crash at this frame.
    #[arg(long)]
    pub crash_at: Option<u32>,
}

/// `run` arguments.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Device directory.
    #[arg(long)]
    pub device: PathBuf,
    /// Milliseconds per synthetic frame.
    #[arg(long, default_value_t = 1)]
    pub frame_ms: u64,
    /// Stop after this many update cycles (0: forever).
    #[arg(long, default_value_t = 0)]
    pub cycles: u32,
}

/// Entry point of `vigil ota`.
pub fn main(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Keygen(a) => keygen(a),
        Command::Publish(a) => publish(a),
        Command::Policy(a) => policy(a),
        Command::RefreshTimestamp(a) => {
            let keys = Keyring::load(&a.keys)?;
            let mut r = Repository::open(&a.repo)?;
            r.refresh_timestamp(&keys, now()? + a.hours * 3600)?;
            println!("timestamp version {}", r.versions().2);
            Ok(())
        }
        Command::Serve(a) => serve(a),
        Command::Provision(a) => provision(a),
        Command::Status(a) => status(&a.device),
        Command::Check(a) => {
            let d = Device::open(&a.device)?;
            let mut up = d.updater()?;
            match client::check(&mut up, &d.slots, &d.cfg)? {
                Ok(o) => println!(
                    "update available: version {} variant {} release {} via {} ({} bytes)",
                    o.version,
                    o.variant,
                    o.release,
                    if o.delta.is_some() { "delta" } else { "full artifact" },
                    o.delta.as_ref().unwrap_or(&o.full).length()
                ),
                Err(n) => println!("no update: {n:?}"),
            }
            Ok(())
        }
        Command::Install(a) => {
            let mut d = Device::open(&a.device)?;
            match d.install()? {
                Some((v, delta)) => println!(
                    "version {v} installed into the inactive slot {} and switched into trial; run `vigil ota trial` or the pipeline to commit",
                    if delta { "from a delta" } else { "from the full artifact" }
                ),
                None => println!("no update to install"),
            }
            Ok(())
        }
        Command::Boot(a) => {
            let mut d = Device::open(&a.device)?;
            let b = d.slots.boot()?;
            println!("booted slot {:?}: version {} ({}){}{}", b.slot, b.info.version, b.info.variant, if b.trial { " [trial]" } else { "" }, if b.reverted { " [reverted]" } else { "" });
            Ok(())
        }
        Command::Trial(a) => {
            let mut d = Device::open(&a.device)?;
            let b = d.slots.boot()?;
            let Some(mut t) = TrialRun::resume(&b, d.cfg.gates) else {
                bail!("no trial running (booted committed version {})", b.info.version);
            };
            let mut verdict = Verdict::Pending { frames: 0 };
            let mut f = 0u32;
            while matches!(verdict, Verdict::Pending { .. }) {
                let r = HealthReport { crashed: a.crash_at == Some(f), latency_us: a.latency_us, deadline_missed: a.miss_every > 0 && f % a.miss_every == a.miss_every - 1 };
                verdict = t.observe(r);
                f += 1;
            }
            let pol = client::fleet_policy(&mut d.updater()?).unwrap_or_default();
            let out = t.finish(&mut d.slots, &verdict, &pol)?;
            println!("{out:?}");
            Ok(())
        }
        Command::Commit(a) => {
            let mut d = Device::open(&a.device)?;
            let v = d.slots.state().trial.as_ref().and_then(|t| d.slots.state().info(t.slot)).map(|i| i.version).ok_or_else(|| anyhow!("no trial to commit"))?;
            let pol = client::fleet_policy(&mut d.updater()?)?;
            crate::rollout::may_commit(&pol, v).map_err(|e| anyhow!("not committing version {v}: {e}"))?;
            let i = d.slots.commit()?;
            println!("committed version {}", i.version);
            Ok(())
        }
        Command::Rollback(a) => {
            let mut d = Device::open(&a.device)?;
            d.slots.revert("operator rollback")?;
            println!("reverted to last-known-good version {}", d.slots.state().committed_info().map(|i| i.version).unwrap_or(0));
            Ok(())
        }
        Command::Run(a) => run(a),
    }
}

fn now() -> anyhow::Result<i64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs() as i64)
}

fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let keys = Keyring::generate(a.root_keys, a.root_threshold, a.targets_keys, a.targets_threshold)?;
    keys.save(&a.keys)?;
    let r = Repository::create(&a.repo, &keys, now()?, Expiry::from_now(now()?))?;
    println!("keys in {}; repository in {}; provision devices with {}", a.keys.display(), a.repo.display(), r.root_path().display());
    Ok(())
}

fn parse_tier(s: &str) -> anyhow::Result<(String, TierReq)> {
    let (name, spec) = s.split_once('=').ok_or_else(|| anyhow!("--tier {s:?}: expected NAME=ACCELERATORS:MIN_MEMORY_MB:MIN_RUNTIME:RANK"))?;
    let p: Vec<&str> = spec.split(':').collect();
    if p.len() != 4 {
        bail!("--tier {s:?}: expected 4 ':'-separated fields, found {}", p.len());
    }
    let accelerators = if p[0] == "any" { Vec::new() } else { p[0].split(',').map(str::to_string).collect() };
    Ok((
        name.to_string(),
        TierReq {
            accelerators,
            min_memory_mb: p[1].parse().with_context(|| format!("--tier {s:?}: MIN_MEMORY_MB"))?,
            min_runtime: p[2].parse().with_context(|| format!("--tier {s:?}: MIN_RUNTIME"))?,
            rank: p[3].parse().with_context(|| format!("--tier {s:?}: RANK"))?,
        },
    ))
}

fn publish(a: PublishArgs) -> anyhow::Result<()> {
    let keys = Keyring::load(&a.keys)?;
    let mut r = Repository::open(&a.repo)?;
    let tiers: Vec<(String, TierReq)> = a.tiers.iter().map(|t| parse_tier(t)).collect::<anyhow::Result<_>>()?;
    let mut variants = Vec::new();
    for v in &a.variants {
        let (name, path) = v.split_once('=').ok_or_else(|| anyhow!("--variant {v:?}: expected NAME=PATH"))?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        let tier = tiers.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone()).unwrap_or_default();
        variants.push(VariantArtifact { variant: name.to_string(), bytes, tier });
    }
    let rel = ModelRelease { model: a.model, version: a.version, release: a.release, rollout_percent: a.rollout, variants, deltas: !a.no_delta };
    let out = r.publish_model(&rel)?;
    let t = now()?;
    r.sign(&keys, t, Expiry::from_now(t))?;
    for p in out {
        println!("{:5} {:>10} bytes  {}", p.kind, p.length, p.path);
    }
    println!("signed targets v{}, snapshot v{}, timestamp v{}", r.versions().0, r.versions().1, r.versions().2);
    Ok(())
}

fn policy(a: PolicyArgs) -> anyhow::Result<()> {
    let keys = Keyring::load(&a.keys)?;
    let mut r = Repository::open(&a.repo)?;
    let mut p = r.policy();
    if a.halt {
        p.halt = true;
    }
    if a.resume {
        p.halt = false;
    }
    if let Some(v) = a.pin {
        p.pin = Some(v);
    }
    if a.unpin {
        p.pin = None;
    }
    for s in &a.rollouts {
        let (rel, pct) = s.split_once('=').ok_or_else(|| anyhow!("--rollout {s:?}: expected RELEASE=PCT"))?;
        let pct: u8 = pct.parse().ok().filter(|p| *p <= 100).ok_or_else(|| anyhow!("--rollout {s:?}: PCT must be 0..=100"))?;
        p.rollouts.insert(rel.to_string(), pct);
    }
    r.set_policy(&p)?;
    let t = now()?;
    r.sign(&keys, t, Expiry::from_now(t))?;
    println!("policy: {}", serde_json::to_string(&p)?);
    Ok(())
}

// ----------------------------------------------------------------------------------
// serve

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if !a.addr.ip().is_loopback() {
        bail!("--addr {}: `vigil ota serve` only listens on loopback addresses", a.addr);
    }
    let l = TcpListener::bind(a.addr).with_context(|| format!("binding {}", a.addr))?;
    let addr = l.local_addr()?;
    if let Some(f) = &a.addr_file {
        write_atomic(f, addr.to_string().as_bytes()).map_err(|e| anyhow!(e))?;
    }
    eprintln!("serving {} on http://{addr}/", a.dir.display());
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let dir = a.dir.clone();
        std::thread::spawn(move || {
            let _ = serve_one(s, &dir);
        });
    }
    Ok(())
}

fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Serves one request: GET of a file under `dir`, 404 otherwise.
fn serve_one(mut s: TcpStream, dir: &Path) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().and_then(pct_decode);
    let file = path.filter(|p| method == "GET" && p.starts_with('/') && !p.split('/').any(|seg| seg == ".." || seg == ".")).map(|p| dir.join(p.trim_start_matches('/')));
    match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n", body.len())?;
            s.write_all(&body)
        }
        None => s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

// ----------------------------------------------------------------------------------
// device

/// Either kind of repository access a device is configured with.
pub enum AnyRemote {
    /// Over HTTP.
    Http(Http),
    /// From a directory.
    Dir(DirRemote),
}

impl Remote for AnyRemote {
    fn fetch(&mut self, kind: FetchKind, path: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        match self {
            AnyRemote::Http(h) => h.fetch(kind, path, max_len),
            AnyRemote::Dir(d) => d.fetch(kind, path, max_len),
        }
    }
}

impl AnyRemote {
    /// `http://BASE` (metadata at BASE/metadata/, targets at BASE/targets/) or a directory.
    pub fn for_repository(repo: &str) -> AnyRemote {
        if repo.starts_with("http://") {
            let b = repo.trim_end_matches('/');
            AnyRemote::Http(Http::new(&format!("{b}/metadata/"), Some(&format!("{b}/targets/"))))
        } else {
            AnyRemote::Dir(DirRemote::new(repo))
        }
    }
}

/// A device directory: `device.json`, `metadata/` (trusted TUF metadata), `slots/`.
pub struct Device {
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub cfg: DeviceConfig,
    /// Its slots.
    pub slots: SlotStore<FsStorage>,
}

impl Device {
    /// Opens a provisioned device directory.
    pub fn open(dir: &Path) -> anyhow::Result<Device> {
        let p = dir.join("device.json");
        let cfg: DeviceConfig = serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {} (run `vigil ota provision` first)", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))?;
        let slots = SlotStore::open(FsStorage::open(dir.join("slots"))?)?;
        Ok(Device { dir: dir.to_path_buf(), cfg, slots })
    }

    /// A TUF updater over the device's trusted metadata, start time fixed now.
    pub fn updater(&self) -> anyhow::Result<Updater<AnyRemote, DirStore>> {
        Ok(Updater::new(AnyRemote::for_repository(&self.cfg.repository), DirStore::new(self.dir.join("metadata")), now()?, Limits::default())?)
    }

    /// Check, download, verify, smoke-test, switch into trial. `Some((version, via
    /// delta))` when switched.
    pub fn install(&mut self) -> anyhow::Result<Option<(u64, bool)>> {
        let mut up = self.updater()?;
        let offer = match client::check(&mut up, &self.slots, &self.cfg)? {
            Ok(o) => o,
            Err(_) => return Ok(None),
        };
        let v = offer.version;
        let staged = client::download(offer, &mut up, &mut self.slots)?;
        let via_delta = staged.via_delta();
        let tested = staged.verify(&mut self.slots)?.smoke_test(&mut self.slots, &ArchiveSmokeTest::default())?;
        tested.switch(&mut self.slots, self.cfg.trial_boots, self.cfg.gates)?;
        Ok(Some((v, via_delta)))
    }
}

fn provision(a: ProvisionArgs) -> anyhow::Result<()> {
    let model = std::fs::read(&a.initial).with_context(|| format!("reading {}", a.initial.display()))?;
    let root = std::fs::read(&a.root).with_context(|| format!("reading {}", a.root.display()))?;
    // The root must parse and verify against itself before the device trusts it.
    crate::tuf::TrustedSet::new(&root, now()?).with_context(|| format!("{} is not a valid trusted root", a.root.display()))?;
    let md = a.device.join("metadata");
    std::fs::create_dir_all(&md).with_context(|| format!("creating {}", md.display()))?;
    write_atomic(&md.join("root.json"), &root).map_err(|e| anyhow!(e))?;
    let cfg = DeviceConfig {
        device_id: a.id,
        model: a.model,
        tier: DeviceTier { accelerator: a.accelerator, memory_mb: a.memory_mb, runtime: a.runtime },
        trial_boots: a.trial_boots,
        gates: HealthGates { frames: a.gate_frames, max_latency_us: a.gate_latency_us, max_violations_per_mille: a.gate_violations_per_mille },
        repository: a.repository,
    };
    write_atomic(&a.device.join("device.json"), &serde_json::to_vec_pretty(&cfg)?).map_err(|e| anyhow!(e))?;
    use sha2::Digest as _;
    let info = SlotInfo {
        version: a.initial_version,
        variant: a.initial_variant,
        target: String::new(),
        release: "factory".into(),
        sha256: hex::encode(sha2::Sha256::digest(&model)),
        length: model.len() as u64,
    };
    SlotStore::provision(FsStorage::open(a.device.join("slots"))?, &model, info)?;
    println!("provisioned {}", a.device.display());
    Ok(())
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let mut d = Device::open(dir)?;
    println!("{}", serde_json::to_string_pretty(d.slots.state())?);
    match d.slots.inspect() {
        Ok((slot, info)) => println!("next boot: slot {slot:?}, version {} ({}), verified", info.version, info.variant),
        Err(e) => println!("next boot: {e}"),
    }
    Ok(())
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut d = Device::open(&a.device)?;
    let mut booted = d.slots.boot()?;
    println!("booted version {}{}", booted.info.version, if booted.trial { " [trial]" } else { "" });
    let healthy = HealthReport { crashed: false, latency_us: d.cfg.gates.max_latency_us / 2, deadline_missed: false };
    let mut cycles = 0;
    loop {
        if let Some(mut t) = TrialRun::resume(&booted, d.cfg.gates) {
            let mut v = Verdict::Pending { frames: 0 };
            while matches!(v, Verdict::Pending { .. }) {
                std::thread::sleep(Duration::from_millis(a.frame_ms));
                v = t.observe(healthy);
            }
            let pol = client::fleet_policy(&mut d.updater()?).unwrap_or_default();
            println!("{:?}", t.finish(&mut d.slots, &v, &pol)?);
        } else if d.install()?.is_none() {
            std::thread::sleep(Duration::from_millis(a.frame_ms.max(1) * 10));
        }
        cycles += 1;
        if a.cycles > 0 && cycles >= a.cycles {
            return Ok(());
        }
        // The runtime reloads the plan from the booted slot (a swap at a frame boundary).
        booted = d.slots.boot()?;
    }
}
