//! `vigil`: the perception runtime's command line.
//!
//! Each subcommand lives in its own module under `src/cli/`.
#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};

/// GPU-first vehicle perception runtime.
///
/// Eight cameras feed lock-free rings into INT8 kernels (CUDA, WGSL or CPU) on a
/// deadline-scheduled executor that keeps every frame inside its latency budget and the
/// chip inside its power cap, then hands a fused object list to the control loop.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `vigil=debug`.
    #[arg(long, global = true, env = "VIGIL_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the perception pipeline (by default on the built-in synthetic rig).
    Run(cli::run::Args),
    /// Write a recording (MCAP) from a source.
    #[command(subcommand)]
    Record(cli::record::Source),
    /// Replay a recording through the pipeline and report on it.
    Replay(cli::replay::Args),
    /// Compile an ONNX model into quantised `.vplan` variants.
    Compile(cli::compile::Args),
    /// Evaluate a model or plan against ground truth in a recording.
    Eval(cli::eval::Args),
    /// Run a hardware-in-the-loop fault scenario.
    Hil(cli::hil::Args),
    /// Over-the-air model updates: repository tools and the device client.
    #[command(subcommand)]
    Ota(cli::ota::Command),
    /// Federated analytics: status and configuration.
    #[command(subcommand)]
    Analytics(cli::analytics::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let result = match cli.command {
        Command::Run(a) => cli::run::main(a),
        Command::Record(a) => cli::record::main(a),
        Command::Replay(a) => cli::replay::main(a),
        Command::Compile(a) => cli::compile::main(a),
        Command::Eval(a) => cli::eval::main(a),
        Command::Hil(a) => cli::hil::main(a),
        Command::Ota(a) => cli::ota::main(a),
        Command::Analytics(a) => cli::analytics::main(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
