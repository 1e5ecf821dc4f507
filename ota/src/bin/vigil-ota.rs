//! `vigil-ota`: the `vigil ota` command as a standalone binary (device images without
//! the full runtime, and this crate's end-to-end and kill-soak tests).

use clap::Parser;

/// Over-the-air model updates: repository tools and the device client.
#[derive(Parser, Debug)]
#[command(name = "vigil-ota", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: ota::cli::Command,
}

fn main() -> std::process::ExitCode {
    match ota::cli::main(Cli::parse().cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
