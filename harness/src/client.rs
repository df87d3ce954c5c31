//! The client library: a [`Driver`] that speaks the wire protocol to a broker server over any
//! [`Connector`], the simulated network or the real one.
//!
//! # Behaviour
//!
//! * **Lazy connection.** The first call connects and says `Hello`; the server must answer
//!   `Welcome`. A refused or timed-out connect, `Goodbye`, or any other answer is a failed
//!   attempt. Calls that arrive while an attempt is under way wait for it instead of starting
//!   their own.
//! * **Pipelining.** Any number of calls share one connection, each with its own request id.
//!   Calls append their encoded frames to an outbox; a writer task sends the whole outbox in one
//!   write, and a reader task hands each response to its call by id, in whatever order the
//!   responses come.
//! * **Outcomes are never guessed.** An answer gives `Ok` or `Fail(Broker)`. No answer within
//!   `request_timeout_ms` of queueing gives `Info(Timeout)`, and a response that comes later is
//!   dropped. A connection that ends (read or write error, end of stream, a frame that does not
//!   decode, `Goodbye`) gives `Info(ConnectionLost)` to every call whose request may have been
//!   written, and `Fail(Unavailable)` to calls whose frames were still in the outbox, since
//!   those never left the process. A call made when no connection can be had gives
//!   `Fail(Unavailable)`.
//! * **Reconnecting.** A lost connection is replaced on the next call, at once. Failed attempts
//!   back off: after the n-th consecutive failure the next attempt waits
//!   `min(initial * 2^(n-1), max) * u`, `u` uniform in [0.5, 1.0] from the seeded generator the
//!   client was given. A successful handshake resets n. Calls made inside the backoff window
//!   fail at once with `Unavailable` rather than wait, so each actor decides its own retry
//!   policy.
//! * **Bounded.** At most `max_in_flight` calls are between queueing and their outcome; further
//!   calls wait for a slot, in arrival order. Waiting was chosen over failing because a full
//!   pipeline is back-pressure from a slow broker, not evidence that the request cannot be
//!   sent, and every slot frees within `request_timeout_ms` at the latest. The wait for a slot
//!   and the connection attempt do not count against the request timeout.
//!
//! # Determinism
//!
//! The client reads time only through tokio (simulated inside turmoil), draws randomness only
//! from its own ChaCha8 generator, keeps pending calls in a queue in id order, spawns only local tasks
//! and holds no `RefCell` borrow across an `.await`. Its behaviour is therefore a function of
//! the seed and the simulation.

mod backoff;
mod conn;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use mqsim_broker::{Command, Reply};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Duration, Instant, timeout};

use crate::driver::{Driver, Failure, Indeterminate, Outcome};
use crate::net::Connector;
use backoff::Backoff;
use conn::{Answer, Conn};

/// How a client behaves. Times are in milliseconds of the clock the client runs on, which is
/// simulated time inside the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The name sent in `Hello`, for the server's logs and the history.
    pub name: String,
    /// How long a call waits for its answer once its request is queued.
    pub request_timeout_ms: u64,
    /// How long a connection attempt, handshake included, may take.
    pub connect_timeout_ms: u64,
    /// The backoff ceiling after the first failed attempt.
    pub reconnect_initial_backoff_ms: u64,
    /// The largest backoff ceiling.
    pub reconnect_max_backoff_ms: u64,
    /// How many calls may await their answers at once; at least one is always allowed.
    pub max_in_flight: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: "client".to_owned(),
            request_timeout_ms: 1000,
            connect_timeout_ms: 1000,
            reconnect_initial_backoff_ms: 10,
            reconnect_max_backoff_ms: 1000,
            max_in_flight: 1024,
        }
    }
}

/// What a client has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Successful handshakes.
    pub connects: u64,
    /// Failed connection attempts: refused, timed out, or a handshake that did not end in
    /// `Welcome`. Calls refused inside a backoff window make no attempt and are not counted.
    pub connect_failures: u64,
    /// Calls that ended in `Info(Timeout)`.
    pub timeouts: u64,
    /// Established connections that ended for any reason other than the client being dropped.
    pub connections_lost: u64,
    /// Requests queued on a connection (calls that failed before that are not counted).
    pub requests: u64,
}

/// A pipelining, reconnecting client. Clones share one connection, one request-id counter and
/// one set of statistics.
pub struct Client<C: Connector> {
    inner: Rc<Inner<C>>,
}

impl<C: Connector> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Connector> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .field("config", &self.inner.config)
            .field("stats", &*self.inner.stats.borrow())
            .finish_non_exhaustive()
    }
}

struct Inner<C: Connector> {
    connector: C,
    addr: String,
    config: ClientConfig,
    /// One permit per call allowed in flight.
    slots: Semaphore,
    /// Whether a call is making a connection attempt. Other calls wait for that attempt to
    /// end rather than start their own.
    connecting: Cell<bool>,
    /// Wakes every call waiting for an attempt at once, so that when it succeeds they all
    /// queue their frames in the same pass and share the writer's first write.
    attempt_ended: Notify,
    stats: Rc<RefCell<ClientStats>>,
    state: RefCell<State>,
}

struct State {
    next_id: u64,
    conn: Option<Rc<Conn>>,
    backoff: Backoff,
}

impl<C: Connector> Drop for Inner<C> {
    fn drop(&mut self) {
        // The connection's tasks hold only the connection, not the client, so they would run
        // on after the last clone is gone; closing stops them and releases the stream.
        if let Some(conn) = self.state.get_mut().conn.take() {
            conn.close("the client was dropped", false);
        }
    }
}

impl<C: Connector + 'static> Client<C> {
    /// A client that will connect to `addr` (`host:port`) through `connector` on its first
    /// call. `rng` seeds the reconnect jitter, and nothing else.
    pub fn new(connector: C, addr: String, config: ClientConfig, rng: ChaCha8Rng) -> Self {
        let backoff = Backoff::new(
            config.reconnect_initial_backoff_ms,
            config.reconnect_max_backoff_ms,
            rng,
        );
        let slots = config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Client {
            inner: Rc::new(Inner {
                connector,
                addr,
                slots: Semaphore::new(slots),
                connecting: Cell::new(false),
                attempt_ended: Notify::new(),
                stats: Rc::new(RefCell::new(ClientStats::default())),
                state: RefCell::new(State {
                    next_id: 0,
                    conn: None,
                    backoff,
                }),
                config,
            }),
        }
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.borrow().clone()
    }
}

impl<C: Connector + 'static> Inner<C> {
    /// The open connection, forgetting one that has closed since it was stored.
    fn open_conn(&self) -> Option<Rc<Conn>> {
        let mut state = self.state.borrow_mut();
        if state.conn.as_ref().is_some_and(|c| c.is_closed()) {
            state.conn = None;
        }
        state.conn.clone()
    }

    /// The open connection, or a new one, or why there is none.
    async fn connection(&self) -> Result<Rc<Conn>, String> {
        loop {
            if let Some(conn) = self.open_conn() {
                return Ok(conn);
            }
            if !self.connecting.get() {
                break;
            }
            // The attempt under way ends with a connection, with a failure that opens a
            // backoff window this call must respect too, or abandoned (its call was dropped),
            // in which case this call may make its own; the loop tells which.
            self.attempt_ended.notified().await;
        }
        self.state.borrow().backoff.check(Instant::now())?;
        let under_way = Attempt::start(self);
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        let attempt = conn::handshake(&self.connector, &self.addr, &self.config.name);
        let result = match timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "connecting to {} timed out after {} ms",
                self.addr, self.config.connect_timeout_ms
            )),
        };
        // The waiting calls are woken before the connection's writer task is spawned, so they
        // run first and their frames join this call's in the writer's first write. Nothing
        // runs before this call's poll ends, so they find the outcome recorded below.
        drop(under_way);
        let mut state = self.state.borrow_mut();
        match result {
            Ok(halves) => {
                let conn = Conn::start(halves, self.stats.clone());
                state.conn = Some(conn.clone());
                state.backoff.succeeded();
                self.stats.borrow_mut().connects += 1;
                Ok(conn)
            }
            Err(why) => {
                state.backoff.failed(Instant::now(), why.clone());
                self.stats.borrow_mut().connect_failures += 1;
                Err(why)
            }
        }
    }
}

/// Marks a connection attempt under way, and on drop, however the attempt ended, marks it over
/// and wakes the calls waiting for it.
struct Attempt<'a, C: Connector> {
    inner: &'a Inner<C>,
}

impl<'a, C: Connector> Attempt<'a, C> {
    fn start(inner: &'a Inner<C>) -> Self {
        inner.connecting.set(true);
        Attempt { inner }
    }
}

impl<C: Connector> Drop for Attempt<'_, C> {
    fn drop(&mut self) {
        self.inner.connecting.set(false);
        self.inner.attempt_ended.notify_waiters();
    }
}

/// Removes a call's pending entry when the call ends for any reason, including its future
/// being dropped, so that a late response finds nobody waiting and is discarded.
struct Forget<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.conn.forget(self.id);
    }
}

impl<C: Connector + 'static> Driver for Client<C> {
    async fn call(&self, command: Command) -> Outcome<Reply> {
        let inner = &*self.inner;
        // The semaphore is never closed, so acquiring only ever waits.
        let Ok(_slot) = inner.slots.acquire().await else {
            return Outcome::Fail(Failure::Unavailable("the client is closed".to_owned()));
        };
        // Opening a connection is rare, and its future, with the handshake's inside, is most of
        // a call's size: boxed, it leaves every call's future small, and a call's future is
        // moved into place (a producer's batch into its set of futures) once per call.
        let open = match inner.open_conn() {
            Some(conn) => Ok(conn),
            None => Box::pin(inner.connection()).await,
        };
        let conn = match open {
            Ok(conn) => conn,
            Err(why) => return Outcome::Fail(Failure::Unavailable(why)),
        };
        let id = {
            let mut state = inner.state.borrow_mut();
            state.next_id += 1;
            state.next_id
        };
        // The timeout counts from queueing; the connection's sweeper enforces it.
        let deadline = Instant::now() + Duration::from_millis(inner.config.request_timeout_ms);
        if let Err(e) = conn.queue(id, command, deadline) {
            return Outcome::Fail(Failure::Unavailable(format!(
                "the request cannot be encoded: {e}"
            )));
        }
        inner.stats.borrow_mut().requests += 1;
        let _forget = Forget { conn: &conn, id };
        match std::future::poll_fn(|cx| conn.poll_answer(id, cx)).await {
            Some(Answer::Reply(Ok(reply))) => Outcome::Ok(reply),
            Some(Answer::Reply(Err(e))) => Outcome::Fail(Failure::Broker(e)),
            Some(Answer::Lost(why)) => Outcome::Info(Indeterminate::ConnectionLost(why)),
            Some(Answer::NotSent(why)) => Outcome::Fail(Failure::Unavailable(why)),
            // The request left the table without an answer, which nothing but this call
            // does; should it ever happen, the request may have been written.
            None => Outcome::Info(Indeterminate::ConnectionLost(
                "the request's answer went missing".to_owned(),
            )),
            Some(Answer::TimedOut) => {
                inner.stats.borrow_mut().timeouts += 1;
                Outcome::Info(Indeterminate::Timeout)
            }
        }
    }
}
