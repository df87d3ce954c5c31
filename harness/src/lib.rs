//! The mqsim harness: scenario loading and the commands behind the `mqsim` binary.
//!
//! At this stage only scenario headers are parsed and validated; the simulation itself does not
//! exist yet. The modules are split so the real scenario loader can grow inside `scenario` and
//! `diagnostic` without the command line changing shape.

pub mod check;
pub mod client;
pub mod commands;
pub mod diagnostic;
pub mod discover;
pub mod driver;
pub mod exit;
pub mod net;
pub mod poke;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod source;
mod suggest;
pub mod wire;

pub use exit::Exit;
