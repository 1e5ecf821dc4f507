//! One module per subcommand; each owns its clap arguments and its `main`.

pub mod analytics;
pub mod compile;
pub mod eval;
pub mod hil;
pub mod ota;
pub mod plans;
pub mod record;
pub mod replay;
pub mod run;
pub mod rtmode;
