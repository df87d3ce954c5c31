//! The local transport: actors call the broker in-process, without a network.
//!
//! It stands in for the server and client where the network is not what a test is about, and
//! makes fast unit tests. The broker still runs as a turmoil host (so it crashes and restarts
//! like the real one, reopening from its [`SharedDisk`]); [`LocalDriver`] reaches the running
//! incarnation through the shared slot. Each direction costs the network's minimum latency;
//! a cut link (a partition) loses the request or the reply, and the caller learns nothing
//! until its request timeout, as over a connection whose peer went silent. Link latency
//! changes and hold/release are network faults and have no effect here.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mqsim_broker::{Broker, Command, Reply, SharedDisk};

use super::control::{Control, HistorySink};
use super::plan::{BROKER, Process};
use super::spec::{DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_TICK_INTERVAL_MS};
use crate::driver::{Driver, Failure, Indeterminate, Outcome};

/// Calls the running broker directly, on behalf of process `process`.
#[derive(Debug, Clone)]
pub struct LocalDriver {
    control: Rc<Control>,
    process: Process,
    latency: Duration,
    timeout: Duration,
}

impl LocalDriver {
    /// A driver for `process`, with the spec's minimum latency and request timeout.
    pub fn new(control: Rc<Control>, process: Process) -> Self {
        let latency = Duration::from_millis(control.spec.network.min_latency_ms);
        let timeout = Duration::from_millis(
            control
                .spec
                .client
                .request_timeout_ms
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        );
        LocalDriver {
            control,
            process,
            latency,
            timeout,
        }
    }

    fn running(&self) -> Option<Rc<RefCell<Broker<SharedDisk>>>> {
        self.control.broker.borrow().clone()
    }

    /// Waits out the rest of the request timeout and reports the request as lost.
    async fn time_out(&self, spent: Duration) -> Outcome<Reply> {
        tokio::time::sleep(self.timeout.saturating_sub(spent)).await;
        Outcome::Info(Indeterminate::Timeout)
    }
}

impl Driver for LocalDriver {
    async fn call(&self, command: Command) -> Outcome<Reply> {
        // A broker that is down refuses the connection: the request was never sent.
        let Some(broker) = self.running() else {
            return Outcome::Fail(Failure::Unavailable("broker is down".into()));
        };
        if self.control.is_cut(self.process, BROKER) {
            return self.time_out(Duration::ZERO).await;
        }
        tokio::time::sleep(self.latency).await;
        // The storage time of the network server's model, without its group commit: a change
        // under `always` durability waits for one sync.
        if let Some(sync_ms) = self.control.spec.server.sync_time_ms
            && self.control.spec.broker.durability == mqsim_broker::Durability::Always
            && crate::server::command_changes_state(&command)
        {
            tokio::time::sleep(Duration::from_millis(sync_ms)).await;
        }
        if !self.running().is_some_and(|b| Rc::ptr_eq(&b, &broker)) {
            return Outcome::Info(Indeterminate::ConnectionLost("broker crashed".into()));
        }
        let (result, events) = {
            let mut b = broker.borrow_mut();
            // Hosts of one step run one after another, each through the whole tick, so a later
            // host can be behind the broker's last command by up to a tick.
            let now = self.control.now().max(b.now());
            let result = b.apply(now, command);
            (result, b.take_events())
        };
        HistorySink(self.control.clone()).record_events(events);
        tokio::time::sleep(self.latency).await;
        if self.control.is_cut(BROKER, self.process) {
            return self.time_out(self.latency * 2).await;
        }
        if !self.running().is_some_and(|b| Rc::ptr_eq(&b, &broker)) {
            return Outcome::Info(Indeterminate::ConnectionLost(
                "broker crashed before the reply".into(),
            ));
        }
        match result {
            Ok(reply) => Outcome::Ok(reply),
            Err(e) => Outcome::Fail(Failure::Broker(e)),
        }
    }
}

/// The broker host of the local transport: opens the broker from the disk, publishes it in the
/// shared slot, and lets time pass in it every tick interval so timers fire without traffic.
pub async fn broker_host(control: Rc<Control>, disk: SharedDisk) -> turmoil::Result {
    let sink = HistorySink(control.clone());
    let now = control.now();
    let mut broker = Broker::open(control.spec.broker.clone(), disk, now)?;
    sink.record_events(broker.take_events());
    let broker = Rc::new(RefCell::new(broker));
    *control.broker.borrow_mut() = Some(broker.clone());
    let interval = Duration::from_millis(
        control
            .spec
            .server
            .tick_interval_ms
            .unwrap_or(DEFAULT_TICK_INTERVAL_MS),
    );
    loop {
        tokio::time::sleep(interval).await;
        let events = {
            let mut b = broker.borrow_mut();
            let now = control.now().max(b.now());
            b.tick(now)?;
            b.take_events()
        };
        sink.record_events(events);
    }
}
