//! The simulated cluster: the broker and its clients as hosts of one turmoil simulation, a
//! fault schedule, and the recorded history.
//!
//! A [`ClusterSpec`] (plain data, see [`spec`]) describes the cluster; [`run()`] builds the
//! simulation, steps it through the fault, heal and drain phases, and returns a [`RunReport`]:
//! the history (and its SHA-256, which identifies the run), the [`Summary`] counts, and whether
//! the drain finished (liveness) apart from whether messages were lost (correctness).
//!
//! * [`spec`]: the cluster description and its bounds, checked by [`validate`]; [`plan`]:
//!   process and subscription numbering derived from it.
//! * [`producer`], [`consumer`]: the workload actors, written against [`crate::driver`] only.
//! * [`hosts`]: the broker host (the server over turmoil TCP) and the actors' clients;
//!   [`local`]: an in-process transport (no network), for fast runs and unit tests.
//! * [`nemesis`]: the fault schedule and how loss is modelled; `run.rs`: the phases.
//! * [`history`]: the record and its JSON Lines form; [`summary`]: the totals.
//! * [`control`]: what the step loop and the hosts share; [`ids`]: message identity in
//!   payloads and seeded randomness.
//!
//! # Determinism
//!
//! The seed fixes everything: turmoil gets it (`rng_seed`) and a fixed epoch, and every random
//! draw of an actor comes from a ChaCha8 stream seeded from the run seed, the process and its
//! incarnation. Nothing simulated reads the wall clock, draws from a thread RNG, spawns a
//! thread, or iterates a hash map (the one thread, the history file's writer, runs outside the
//! simulation on copies of the entries: [`jsonl::Stream`]), and nothing here races futures in
//! a `select!` (the server's and the client's are `biased;`). Hosts of one step run in
//! turmoil's fixed order, so running a spec twice gives the same history bytes, which the
//! tests check by hash.

pub mod consumer;
pub mod control;
pub mod dense;
pub mod history;
pub mod hosts;
pub mod ids;
pub mod jsonl;
pub mod local;
pub mod nemesis;
pub mod plan;
pub mod producer;
pub mod read;
mod run;
pub mod spec;
pub mod summary;
pub mod validate;

pub use history::History;
pub use local::LocalDriver;
pub use nemesis::{Fault, FaultSpec};
pub use plan::Plan;
pub use run::{Drain, RunError, RunReport, builder, run};
pub use spec::{ClusterSpec, ConsumerSpec, ProducerSpec, SpecError, Transport};
pub use summary::Summary;
