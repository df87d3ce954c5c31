//! The hosts of a simulation: the broker and every actor, for either transport.
//!
//! Actors are turmoil hosts rather than clients, even though they serve nothing, because only
//! hosts can be crashed and restarted. Each factory runs again on a restart, so it builds the
//! incarnation from what outlives crashes: the broker's [`SharedDisk`], the shared control.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mqsim_broker::{Broker, Command, Reply, SharedDisk};

use super::control::{Control, HistorySink};
use super::ids;
use super::local::{self, LocalDriver};
use super::plan::Process;
use super::spec::Transport;
use super::{consumer, producer};
use crate::client::{Client, ClientConfig};
use crate::driver::{Driver, Indeterminate, Outcome};
use crate::net::SimConnector;
use crate::server::{ServerConfig, serve};

/// The port the broker listens on.
pub const BROKER_PORT: u16 = 7000;

/// Registers every host of `control`'s plan on `sim`.
pub fn add(sim: &mut turmoil::Sim<'_>, control: &Rc<Control>, disk: &SharedDisk) {
    let transport = control.spec.transport;
    let (c, d) = (control.clone(), disk.clone());
    match transport {
        Transport::Local => sim.host("broker", move || local::broker_host(c.clone(), d.clone())),
        Transport::Network => sim.host("broker", move || broker_host(c.clone(), d.clone())),
    }
    for &slot in &control.plan.producers {
        let c = control.clone();
        let name = control.plan.name(slot.process);
        match transport {
            Transport::Local => sim.host(name, move || {
                let driver = Rc::new(LocalDriver::new(c.clone(), slot.process));
                producer::run(c.clone(), slot, driver)
            }),
            Transport::Network => sim.host(name, move || {
                let driver = Rc::new(Reconnecting::new(c.clone(), slot.process));
                producer::run(c.clone(), slot, driver)
            }),
        }
    }
    for &slot in &control.plan.consumers {
        let c = control.clone();
        let name = control.plan.name(slot.process);
        match transport {
            Transport::Local => sim.host(name, move || {
                let driver = Rc::new(LocalDriver::new(c.clone(), slot.process));
                consumer::run(c.clone(), slot, driver)
            }),
            Transport::Network => sim.host(name, move || {
                let driver = Rc::new(Reconnecting::new(c.clone(), slot.process));
                consumer::run(c.clone(), slot, driver)
            }),
        }
    }
}

/// The broker host of the network transport: reopens the broker from the disk (recovering
/// what was synced) and serves it on turmoil's TCP.
async fn broker_host(control: Rc<Control>, disk: SharedDisk) -> turmoil::Result {
    let now = control.now();
    let broker = Broker::open(control.spec.broker.clone(), disk, now)?;
    let broker = Rc::new(RefCell::new(broker));
    *control.broker.borrow_mut() = Some(broker.clone());
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
    let s = &control.spec.server;
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        tick_interval_ms: s.tick_interval_ms.unwrap_or(defaults.tick_interval_ms),
        max_connections: s.max_connections.unwrap_or(defaults.max_connections),
        max_pending_requests: s
            .max_pending_requests
            .unwrap_or(defaults.max_pending_requests),
        sync_time_ms: s.sync_time_ms.unwrap_or(defaults.sync_time_ms),
    };
    let sink = Rc::new(HistorySink(control.clone()));
    serve(
        listener,
        broker,
        Rc::new(crate::net::HostClock::start()),
        sink,
        config,
    )
    .await?;
    Ok(())
}

/// A client that is replaced after a request times out.
///
/// turmoil's TCP does not retransmit, so a connection that lost segments to a partition stays
/// stuck after the partition heals: the receiver waits for the missing segment forever. A real
/// connection would recover by retransmission or be reset by its keepalive; the application
/// policy many clients use (Kafka's `request.timeout.ms`, for one) is to treat a timed-out
/// request as a broken connection and reconnect, and that is what actors do here: the next
/// call goes through a fresh client and connection, while calls still in flight on the old
/// one finish there (with a timeout or a lost connection, never a guess).
pub struct Reconnecting {
    control: Rc<Control>,
    process: Process,
    current: RefCell<Client<SimConnector>>,
    generation: Cell<u32>,
}

impl std::fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("process", &self.process)
            .field("generation", &self.generation.get())
            .finish_non_exhaustive()
    }
}

impl Reconnecting {
    /// The first client of `process`'s current incarnation.
    pub fn new(control: Rc<Control>, process: Process) -> Self {
        let client = make_client(&control, process, 1);
        Reconnecting {
            control,
            process,
            current: RefCell::new(client),
            generation: Cell::new(1),
        }
    }
}

fn make_client(control: &Control, process: Process, generation: u32) -> Client<SimConnector> {
    let c = &control.spec.client;
    let d = ClientConfig::default();
    let config = ClientConfig {
        name: control.plan.name(process).to_owned(),
        request_timeout_ms: c.request_timeout_ms.unwrap_or(d.request_timeout_ms),
        connect_timeout_ms: c.connect_timeout_ms.unwrap_or(d.connect_timeout_ms),
        reconnect_initial_backoff_ms: c
            .reconnect_initial_backoff_ms
            .unwrap_or(d.reconnect_initial_backoff_ms),
        reconnect_max_backoff_ms: c
            .reconnect_max_backoff_ms
            .unwrap_or(d.reconnect_max_backoff_ms),
        max_in_flight: c.max_in_flight.unwrap_or(d.max_in_flight),
    };
    let incarnation = control.proc(process).incarnation.get();
    let rng = ids::stream(control.spec.seed, process, incarnation, generation);
    Client::new(SimConnector, format!("broker:{BROKER_PORT}"), config, rng)
}

impl Driver for Reconnecting {
    async fn call(&self, command: Command) -> Outcome<Reply> {
        let generation = self.generation.get();
        let client = self.current.borrow().clone();
        let outcome = client.call(command).await;
        // Only the first timeout of a generation replaces it; the other calls that were in
        // flight on it time out too and must not replace its successor.
        if matches!(outcome, Outcome::Info(Indeterminate::Timeout))
            && self.generation.get() == generation
        {
            let next = generation + 1;
            self.generation.set(next);
            *self.current.borrow_mut() = make_client(&self.control, self.process, next);
        }
        outcome
    }
}
