//! One established connection: the handshake that opens it, a writer task that sends every
//! frame queued since its last write in one write, and a reader task that hands each response
//! to the call waiting for it, and a sweeper task that times out requests, sleeping until the
//! first pending deadline.
//!
//! The tasks are local (`spawn_local`): the client is single-threaded by design, because the
//! simulator runs every host on one thread and determinism forbids real threads anyway.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use mqsim_broker::{BrokerError, Command, Reply};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::ClientStats;
use crate::net::{Connector, Stream};
use crate::wire::{ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame, WireError, encode};

/// What became of a queued request.
#[derive(Debug)]
pub(super) enum Answer {
    /// The broker answered.
    Reply(Result<Reply, BrokerError>),
    /// The connection ended after the request was handed to the writer: it may or may not have
    /// reached the broker.
    Lost(String),
    /// The connection ended while the request was still in the outbox: no byte of it left
    /// this process, so it definitely did not happen.
    NotSent(String),
    /// No answer came by the request's deadline.
    TimedOut,
}

/// The two halves of a connection that has completed the handshake.
pub(super) type Halves<S> = (FrameReader<<S as Stream>::Read>, <S as Stream>::Write);

/// Connects to `addr`, says `Hello` and waits for `Welcome`. Anything else, including
/// `Goodbye`, is a failed attempt, described by the `Err` string.
pub(super) async fn handshake<C: Connector>(
    connector: &C,
    addr: &str,
    name: &str,
) -> Result<Halves<C::Stream>, String> {
    let stream = connector
        .connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr} failed: {e}"))?;
    let (read, mut write) = stream.into_halves();
    let hello = ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        client: name.to_owned(),
    };
    let mut out = Vec::new();
    encode(&hello, &mut out).map_err(|e| format!("cannot encode Hello: {e}"))?;
    write
        .write_all(&out)
        .await
        .map_err(|e| format!("sending Hello to {addr} failed: {e}"))?;
    let mut frames = FrameReader::new(read);
    match frames.next::<ServerFrame>().await {
        Ok(Some(ServerFrame::Welcome { .. })) => Ok((frames, write)),
        Ok(Some(ServerFrame::Goodbye { reason })) => {
            Err(format!("{addr} refused the handshake: {reason}"))
        }
        Ok(Some(ServerFrame::Response { id, .. })) => Err(format!(
            "{addr} answered Hello with a response to request {id}"
        )),
        Ok(None) => Err(format!("{addr} closed the connection during the handshake")),
        Err(e) => Err(format!("handshake with {addr} failed: {e}")),
    }
}

/// The state the calls and the three tasks of one connection share.
#[derive(Debug)]
pub(super) struct Conn {
    /// Encoded frames not yet taken by the writer.
    outbox: RefCell<Vec<u8>>,
    /// The id of the last request put in the outbox.
    last_queued: Cell<Option<u64>>,
    /// The id of the last request the writer has taken from the outbox (and so may have sent).
    /// Ids only grow, so every pending request at or below it may have left this process.
    last_taken: Cell<Option<u64>>,
    /// Calls waiting for an answer, by request id, each with its deadline: ids and deadlines
    /// grow together, so the first entry is the next to expire.
    pending: RefCell<Pending>,
    /// Wakes the writer when the outbox gains a frame.
    wake_writer: Notify,
    /// Wakes the timeout sweeper when a request is queued with nothing else pending.
    wake_sweeper: Notify,
    closed: Cell<bool>,
    tasks: RefCell<Vec<AbortHandle>>,
    stats: Rc<RefCell<ClientStats>>,
}

impl Conn {
    /// Starts the writer and reader tasks of a connection that completed its handshake.
    pub(super) fn start<R, W>(
        (frames, write): (FrameReader<R>, W),
        stats: Rc<RefCell<ClientStats>>,
    ) -> Rc<Self>
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let conn = Rc::new(Conn {
            outbox: RefCell::new(Vec::new()),
            last_queued: Cell::new(None),
            last_taken: Cell::new(None),
            pending: RefCell::new(Pending::default()),
            wake_writer: Notify::new(),
            wake_sweeper: Notify::new(),
            closed: Cell::new(false),
            tasks: RefCell::new(Vec::new()),
            stats,
        });
        let writer = tokio::task::spawn_local(write_loop(conn.clone(), write));
        let reader = tokio::task::spawn_local(read_loop(conn.clone(), frames));
        let sweeper = tokio::task::spawn_local(sweep_loop(conn.clone()));
        // No task has run yet (they only run when the caller yields), so the handles are in
        // place before anything can call `close`.
        conn.tasks.borrow_mut().extend([
            writer.abort_handle(),
            reader.abort_handle(),
            sweeper.abort_handle(),
        ]);
        conn
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Puts request `id` in the outbox and returns where its answer will arrive, at the latest
    /// [`Answer::TimedOut`] at `deadline`. Fails only
    /// when the request cannot be encoded (it is too large), in which case nothing was queued.
    pub(super) fn queue(
        &self,
        id: u64,
        command: Command,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Answer>, WireError> {
        debug_assert!(
            !self.is_closed(),
            "requests are only queued on open connections"
        );
        // Straight into the outbox: `encode` leaves it as it was when it fails, so the other
        // calls' frames there are safe.
        encode(
            &ClientFrame::Request { id, command },
            &mut self.outbox.borrow_mut(),
        )?;
        self.last_queued.set(Some(id));
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            self.wake_sweeper.notify_one();
        }
        pending.insert(id, deadline, tx);
        drop(pending);
        self.wake_writer.notify_one();
        Ok(rx)
    }

    /// Stops waiting for request `id`: a response that arrives later is dropped.
    pub(super) fn forget(&self, id: u64) {
        self.pending.borrow_mut().remove(id);
    }

    /// Tears the connection down: every pending call gets `Lost` or `NotSent` with `reason`,
    /// and the tasks stop, which drops the stream. `lost` says whether this counts as a lost
    /// connection (it does not when the client itself is dropped). Closing twice does nothing.
    pub(super) fn close(&self, reason: &str, lost: bool) {
        if self.closed.replace(true) {
            return;
        }
        if lost {
            self.stats.borrow_mut().connections_lost += 1;
        }
        *self.outbox.borrow_mut() = Vec::new();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let last_taken = self.last_taken.get();
        for (id, (_, tx)) in pending.into_iter() {
            let answer = if last_taken.is_some_and(|taken| id <= taken) {
                Answer::Lost(reason.to_owned())
            } else {
                Answer::NotSent(format!("the connection ended before it was sent: {reason}"))
            };
            // The call may have given up already; then nobody needs the answer.
            let _ = tx.send(answer);
        }
        // A task may be closing its own connection here; aborting itself takes effect when it
        // next yields, and it returns right after this call anyway.
        for task in self.tasks.take() {
            task.abort();
        }
    }

    fn complete(&self, id: u64, result: Result<Reply, BrokerError>) {
        // No entry means the call timed out or was dropped: the late answer is not wanted.
        let waiting = self.pending.borrow_mut().remove(id);
        if let Some((_, tx)) = waiting {
            let _ = tx.send(Answer::Reply(result));
        }
    }
}

/// Sends everything in the outbox, one write per wake-up, until the connection closes.
///
/// The simulator charges per write and per tick, not per byte, so the writer takes the whole
/// outbox at once: every call that queued a frame before the writer ran shares one write. The
/// scheduler runs woken tasks in the order they were woken, so calls whose tasks were already
/// due when the first call woke the writer (a burst woken together) run before it and share its
/// write. The writer does not yield to gather more: that cost a second poll and a pass of the
/// timer driver per request, in a simulation where most writes carry one frame anyway.
async fn write_loop<W: AsyncWrite + Unpin>(conn: Rc<Conn>, mut write: W) {
    let mut batch = Vec::new();
    loop {
        std::mem::swap(&mut *conn.outbox.borrow_mut(), &mut batch);
        if batch.is_empty() {
            conn.wake_writer.notified().await;
            continue;
        }
        conn.last_taken.set(conn.last_queued.get());
        let written = async {
            write.write_all(&batch).await?;
            write.flush().await
        }
        .await;
        if let Err(e) = written {
            conn.close(&format!("write failed: {e}"), true);
            return;
        }
        // Keep the allocation for the next batch.
        batch.clear();
    }
}

/// The calls waiting for answers: a window of request ids from the first still waiting, each
/// slot empty once its call is answered or gone. Request ids on one connection only grow and
/// have few gaps, so this is a queue rather than an ordered map.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The id of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<(Instant, oneshot::Sender<Answer>)>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn insert(&mut self, id: u64, deadline: Instant, tx: oneshot::Sender<Answer>) {
        if self.slots.is_empty() {
            self.first = id;
        }
        while id < self.first {
            self.slots.push_front(None);
            self.first -= 1;
        }
        let i = (id - self.first) as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some((deadline, tx));
    }

    fn remove(&mut self, id: u64) -> Option<(Instant, oneshot::Sender<Answer>)> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let taken = self.slots.get_mut(i)?.take();
        self.trim();
        taken
    }

    /// Drops empty slots at the front, so that the front, if any, is waiting.
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    fn first_deadline(&self) -> Option<Instant> {
        self.slots.front().and_then(|s| s.as_ref()).map(|(d, _)| *d)
    }

    /// Takes the first call if its deadline is at or before `now`.
    fn pop_expired(&mut self, now: Instant) -> Option<oneshot::Sender<Answer>> {
        if self.first_deadline()? > now {
            return None;
        }
        let (_, tx) = self.slots.pop_front()??;
        self.first += 1;
        self.trim();
        Some(tx)
    }

    /// Every waiting call with its id, in id order.
    fn into_iter(self) -> impl Iterator<Item = (u64, (Instant, oneshot::Sender<Answer>))> {
        let first = self.first;
        (first..)
            .zip(self.slots)
            .filter_map(|(id, slot)| slot.map(|s| (id, s)))
    }
}

/// Times out requests: one timer per connection, set for the first pending request's deadline,
/// instead of one per call.
async fn sweep_loop(conn: Rc<Conn>) {
    loop {
        let first = conn.pending.borrow().first_deadline();
        let Some(deadline) = first else {
            conn.wake_sweeper.notified().await;
            continue;
        };
        tokio::time::sleep_until(deadline).await;
        let now = Instant::now();
        loop {
            let expired = { conn.pending.borrow_mut().pop_expired(now) };
            let Some(tx) = expired else { break };
            // The call may have given up already; then nobody needs the answer.
            let _ = tx.send(Answer::TimedOut);
        }
    }
}

/// Hands responses to the calls waiting for them until the connection ends, then closes it.
async fn read_loop<R: AsyncRead + Unpin>(conn: Rc<Conn>, mut frames: FrameReader<R>) {
    let reason = loop {
        match frames.next::<ServerFrame>().await {
            Ok(Some(ServerFrame::Response { id, result })) => conn.complete(id, result),
            Ok(Some(ServerFrame::Goodbye { reason })) => {
                break format!("the server said goodbye: {reason}");
            }
            Ok(Some(ServerFrame::Welcome { .. })) => {
                break "protocol error: a second Welcome".to_owned();
            }
            Ok(None) => break "the server closed the connection".to_owned(),
            Err(e) => break format!("read failed: {e}"),
        }
    };
    conn.close(&reason, true);
}
