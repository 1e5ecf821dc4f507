//! `vigil analytics`: status of the on-vehicle analytics and their configuration.

use std::path::{Path, PathBuf};

use analytics::config::{AnalyticsConfig, resolve_path, set_key};
use analytics::privacy::{Budget, MICRO};
use analytics::{Status, spool};
use anyhow::Context;

/// Subcommands of `vigil analytics`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Windows released or refused, spool size, privacy budget left today.
    Status {
        /// vigil config file (TOML); its `[analytics]` section names the state directory.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show, check or edit the `[analytics]` section (endpoints, task id, budget, spool).
    Config {
        /// vigil config file (TOML).
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<ConfigAction>,
    },
}

/// `vigil analytics config` actions.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigAction {
    /// Print the effective `[analytics]` section (defaults filled in) and check it.
    Show,
    /// Set one value, e.g. `dap.leader https://leader.example/` or `privacy.epsilon_per_day 0.5`.
    /// The file keeps its other sections and comments; an invalid result is refused.
    Set {
        /// Dotted key below `analytics.`.
        key: String,
        /// New value (typed by the setting).
        value: String,
    },
}

/// Entry point of `vigil analytics`.
pub fn main(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Status { config, json } => status(&resolve_path(config.as_deref()), json),
        Command::Config { config, action } => {
            let path = resolve_path(config.as_deref());
            match action.unwrap_or(ConfigAction::Show) {
                ConfigAction::Show => show(&path),
                ConfigAction::Set { key, value } => {
                    let cfg = set_key(&path, &key, &value)?;
                    println!("{}: analytics.{key} set", path.display());
                    print_config(&cfg)
                }
            }
        }
    }
}

fn load(path: &Path) -> anyhow::Result<AnalyticsConfig> {
    if !path.exists() {
        anyhow::bail!("{}: no such config file (pass --config or set VIGIL_CONFIG)", path.display());
    }
    Ok(AnalyticsConfig::load(path)?)
}

fn print_config(cfg: &AnalyticsConfig) -> anyhow::Result<()> {
    print!("{}", cfg.to_toml().context("serialising the config")?);
    Ok(())
}

fn show(path: &Path) -> anyhow::Result<()> {
    let cfg = load(path)?;
    print_config(&cfg)?;
    match cfg.validate() {
        Ok(()) if cfg.endpoint()?.is_none() => println!("# valid; no DAP endpoint configured: reports stay in the spool"),
        Ok(()) => println!("# valid"),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
    Ok(())
}

fn status(path: &Path, json: bool) -> anyhow::Result<()> {
    let cfg = load(path)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let st = Status::read(&cfg.state_dir)?.unwrap_or_default();
    let entries = spool::list(&cfg.spool_dir())?;
    let spool_bytes: u64 = entries.iter().map(|e| e.size).sum();
    let counters = spool::read_counters(&cfg.spool_dir());
    let per_day = analytics::privacy::to_micro(cfg.privacy.epsilon_per_day);
    let budget_left = Budget::open(&cfg.state_dir, per_day).map(|b| b.left_micro(now)).unwrap_or(per_day);
    if json {
        let v = serde_json::json!({
            "state_dir": cfg.state_dir,
            "windows": {
                "closed": st.windows_closed, "released": st.windows_released,
                "refused_budget": st.windows_refused_budget, "empty": st.windows_empty, "clipped": st.windows_clipped,
                "last": st.last_window,
            },
            "events": { "folded": st.events_folded, "dropped": st.events_dropped, "late": st.events_late },
            "spool": { "reports": entries.len(), "bytes": spool_bytes, "max_bytes": cfg.spool.max_bytes, "counters": counters },
            "budget": { "epsilon_per_day": cfg.privacy.epsilon_per_day, "epsilon_left_today": budget_left as f64 / MICRO as f64,
                        "epsilon_per_report": cfg.privacy.epsilon_per_report },
            "last_upload_error": st.last_upload_error,
            "status_updated_secs": st.updated_secs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("state dir      {}", cfg.state_dir.display());
    println!(
        "windows        {} closed, {} released, {} refused (budget), {} empty, {} clipped",
        st.windows_closed, st.windows_released, st.windows_refused_budget, st.windows_empty, st.windows_clipped
    );
    if let Some(w) = &st.last_window {
        let q = |x: Option<u64>| x.map(|v| format!("{:.1} ms", v as f64 / 1000.0)).unwrap_or_else(|| "-".into());
        println!(
            "last window    #{}: {} frames, {} misses, latency p50 {} p90 {} p99 {}",
            w.index, w.frames, w.deadline_misses, q(w.latency_p50_us), q(w.latency_p90_us), q(w.latency_p99_us)
        );
    }
    println!("events         {} folded, {} dropped (ring full), {} late", st.events_folded, st.events_dropped, st.events_late);
    println!(
        "spool          {} reports, {} / {} bytes; {} uploaded, {} dropped (age), {} dropped (size), {} rejected, {} corrupt",
        entries.len(),
        spool_bytes,
        cfg.spool.max_bytes,
        counters.uploaded,
        counters.dropped_age,
        counters.dropped_size,
        counters.rejected,
        counters.corrupt
    );
    println!(
        "budget         {:.3} of {:.3} epsilon left today ({:.3} per report)",
        budget_left as f64 / MICRO as f64,
        cfg.privacy.epsilon_per_day,
        cfg.privacy.epsilon_per_report
    );
    if let Some(e) = &st.last_upload_error {
        println!("last error     {e}");
    }
    Ok(())
}

/// Starts the analytics service for a pipeline run (`vigil run`, `vigil replay`) as the
/// `[analytics]` section of the config file says. No config file, or `enabled = false`:
/// analytics stay off (said once in the log). A config file that does not parse or
/// validate is an error naming the file and field: a vehicle must not silently run without
/// the analytics its operator configured.
pub fn start_for_pipeline(config: Option<&Path>) -> anyhow::Result<Option<analytics::Analytics>> {
    let path = resolve_path(config);
    if !path.exists() {
        tracing::info!("analytics off: no config file at {} (see `vigil analytics config --help`)", path.display());
        return Ok(None);
    }
    let cfg = AnalyticsConfig::load(&path)?;
    if !cfg.enabled {
        tracing::info!("analytics off: analytics.enabled = false in {}", path.display());
        return Ok(None);
    }
    cfg.validate().with_context(|| format!("{}: [analytics]", path.display()))?;
    let endpoint = cfg.endpoint()?.map(|e| e.leader).unwrap_or_else(|| "none (reports stay in the spool)".into());
    let svc = analytics::Analytics::start(cfg.clone()).with_context(|| format!("starting analytics (state {})", cfg.state_dir.display()))?;
    tracing::info!("analytics on: {} s windows, state {}, leader {endpoint}", cfg.window_secs, cfg.state_dir.display());
    Ok(Some(svc))
}
