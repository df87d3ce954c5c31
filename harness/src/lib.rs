//! The mqsim harness: the simulated cluster ([`sim`]), the checkers that judge its history
//! ([`check`]), the wire protocol, server and client, and the commands behind the `mqsim`
//! binary.
//!
//! The command line still reads only scenario headers; mapping scenarios onto [`sim`] and
//! [`check`] is the next step. The modules are split so that the scenario loader can grow
//! inside `scenario` and `diagnostic` without the command line changing shape.

pub mod check;
pub mod client;
pub mod commands;
pub mod diagnostic;
pub mod discover;
pub mod driver;
pub mod exit;
pub mod net;
pub mod poke;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod source;
mod suggest;
pub mod wire;

pub use exit::Exit;
