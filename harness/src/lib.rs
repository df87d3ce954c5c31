//! The mqsim harness: the simulated cluster ([`sim`]), the checkers that judge its history
//! ([`check`]), the wire protocol, server and client, and the commands behind the `mqsim`
//! binary.
//!
//! [`scenario`] reads a scenario file into a validated [`sim::ClusterSpec`] and its
//! expectations; [`batch`] and [`runner`] run scenarios through [`sim`] and [`check`] and judge
//! them against those expectations (`mqsim run`).

pub mod baseline;
pub mod batch;
pub mod check;
pub mod client;
pub mod commands;
pub mod compare;
pub mod coverage;
pub mod diagnostic;
pub mod discover;
pub mod driver;
pub mod exit;
pub mod explore;
pub mod html;
pub mod merge;
pub mod net;
pub mod parallel;
pub mod poke;
pub mod profile;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod source;
mod suggest;
pub mod svg;
pub mod wire;

pub use exit::Exit;
