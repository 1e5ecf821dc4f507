//! `vigil hil`: hardware-in-the-loop fault scenarios.

use pipeline::hil::{Bounds, Scenario, run};

/// Arguments of `vigil hil`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "Scenarios: camera-dropout, corrupt-frames, slow-kernel, power-cap-halved, thermal-ramp, \
backend-lost, reader-stall, or `all`. Each runs the live loop (executor, ladder, governor, fusion, tracking, \
control publication) against a scripted world and a stand-in device for --seconds, injects its fault between \
40% and 65% of the run, and checks the invariants: the control loop is never blocked, the snapshot age stays \
bounded, the front camera keeps its minimum rate, every degradation has a logged reason, nothing panics. \
Exits non-zero when any invariant is violated.")]
pub struct Args {
    /// Scenario name, or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Length of each scenario run, seconds.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
}

/// Entry point of `vigil hil`.
pub fn main(args: Args) -> anyhow::Result<()> {
    let list: Vec<Scenario> = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        vec![Scenario::from_name(&args.scenario).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            anyhow::anyhow!("--scenario {}: unknown; expected one of {} or all", args.scenario, names.join(", "))
        })?]
    };
    if !(1.0..=600.0).contains(&args.seconds) {
        anyhow::bail!("--seconds {}: must be between 1 and 600", args.seconds);
    }
    let bounds = Bounds::default();
    let mut failed = 0;
    for s in list {
        let r = run(s, args.seconds);
        let v = r.violations(&bounds);
        println!(
            "{:<18} {}  front {:.1} fps  worst age {:.1} ms  worst read {:.3} ms  worst publish {:.3} ms  max level {}  dropped {}  failover {}",
            s.name(),
            if v.is_empty() { "PASS" } else { "FAIL" },
            r.frames[0] as f64 / r.seconds,
            r.worst_age_ms,
            r.worst_read_ms,
            r.worst_publish_ms,
            r.max_level,
            r.dropped,
            r.failed_over
        );
        for e in &r.events {
            println!("    ladder {} -> {} ({:?}) because {:?}", e.from, e.to, e.step, e.reason);
        }
        for x in &v {
            println!("    violated: {x}");
        }
        if !v.is_empty() {
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} scenario(s) violated an invariant");
    }
    Ok(())
}
