//! The broker server: the reference broker behind the wire protocol.
//!
//! [`serve`] is written once against the [`Listener`] and [`Clock`] abstractions, so the same
//! code answers turmoil's simulated sockets at simulated time and tokio's real sockets at real
//! time. Everything runs on one thread: tasks are spawned with `spawn_local`, so the caller must
//! be inside a `LocalSet` (a turmoil host always is; the real server makes one).
//!
//! # Tasks
//!
//! * The accept loop admits up to [`ServerConfig::max_connections`] connections and turns away
//!   the rest with [`ServerFrame::Goodbye`].
//! * A ticker calls [`Broker::tick`] every [`ServerConfig::tick_interval_ms`], so leases expire,
//!   delays end and interval syncs happen when no client sends anything.
//! * One task per connection: `Hello` first, answered with `Welcome` or, for another protocol
//!   version, `Goodbye`; then each `Request` is applied at [`Clock::now`] and answered with a
//!   `Response` carrying its id. Every request already buffered is answered before the task
//!   writes, and the answers leave in one write, because turmoil charges per write, not per byte.
//!
//! After every command and every tick the broker's events go to the [`EventSink`] before
//! anything else can run, so the history sees them in the order the broker produced them.
//!
//! # Failure
//!
//! A malformed, oversize or truncated frame ends its own connection and nothing else: the
//! broker only ever sees decoded commands. A refusal (wrong version, a frame out of order, the
//! connection limit) is a `Goodbye` with the reason, then an orderly close. Nothing here prints:
//! output from inside a simulation would interleave nondeterministically with the harness's own.
//!
//! # Modelled storage time
//!
//! Under `always` durability an answer waits for its record to be synced. With a
//! `sync_time_ms`, a batch of requests in which some command may change state (anything but a
//! receive) waits for the sync that covers it, then is applied and answered. Requests that
//! arrive meanwhile form the next batch, and syncs are group commits on one disk
//! (`wait_for_sync`), so a slow disk shows in publish and end-to-end latency without capping
//! throughput. A connection reads its next batch only once the previous one is answered, so
//! under load a change can wait up to about three sync times.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use mqsim_broker::{Broker, BrokerError, Command, Event, Reply, Storage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::{Duration, MissedTickBehavior, timeout};

use crate::net::{Clock, Listener, Stream};
use crate::wire::{self, ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame, WireError};

/// How a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Milliseconds between the ticker's calls to [`Broker::tick`]; 0 is taken as 1.
    pub tick_interval_ms: u64,
    /// Connections served at once; further ones get a `Goodbye` and are closed.
    pub max_connections: usize,
    /// Requests one connection may have answered but not yet written: a longer pipelined
    /// burst is answered in several writes. 0 is taken as 1.
    pub max_pending_requests: usize,
    /// Simulated milliseconds one sync of the log takes under `always` durability.
    pub sync_time_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tick_interval_ms: 10,
            max_connections: 1024,
            max_pending_requests: 4096,
            sync_time_ms: 0,
        }
    }
}

/// Where the broker's events go: the history, in a simulation.
pub trait EventSink {
    /// Takes the events of one command or tick, in the order the broker produced them. It is
    /// called only with a non-empty batch. The events are drained from a buffer the server
    /// keeps, so that they cost no allocation per command.
    fn record(&self, events: std::vec::Drain<'_, Event>);
}

/// Discards events: for a server nobody checks.
impl EventSink for () {
    fn record(&self, _events: std::vec::Drain<'_, Event>) {}
}

/// Keeps every event, in order: for tests and small runs.
impl EventSink for RefCell<Vec<Event>> {
    fn record(&self, events: std::vec::Drain<'_, Event>) {
        self.borrow_mut().extend(events);
    }
}

/// Bytes of answers after which a batch is written even if more requests are buffered, so one
/// pipelining client cannot make the server hold an unbounded reply buffer.
const BATCH_BYTES: usize = 1024 * 1024;

/// How long a closing connection waits for its `Goodbye` to be written and for the peer to
/// close. Closing with unread input sends a reset, which can overtake the `Goodbye` on the way
/// and lose it, so the server reads and discards for a while first, as a lingering close does.
const LINGER: Duration = Duration::from_secs(1);

/// Bytes a closing connection discards at most before it closes anyway.
const LINGER_BYTES: usize = 1024 * 1024;

/// Connections being turned away at once; beyond this they are closed without a `Goodbye`,
/// which is the only bounded answer left.
const MAX_REFUSALS: usize = 64;

/// Serves `broker` on `listener` until the listener fails.
///
/// Must run inside a `LocalSet`. Returns the listener's error; transient accept errors (a
/// connection aborted before it was accepted) are skipped. When the future is dropped or
/// returns, every task it spawned is aborted with it.
pub async fn serve<L: Listener, S: Storage + 'static>(
    listener: L,
    broker: Rc<RefCell<Broker<S>>>,
    clock: Rc<dyn Clock>,
    sink: Rc<dyn EventSink>,
    config: ServerConfig,
) -> io::Result<()> {
    let shared = Rc::new(Shared {
        broker,
        clock,
        sink,
        events: RefCell::new(Vec::new()),
        max_pending: config.max_pending_requests.max(1),
        sync_time: Duration::from_millis(config.sync_time_ms),
        last_sync: std::cell::Cell::new(None),
    });
    // Events of the broker's start (a recovery, leases it released) come before any command's.
    shared.drain_events();
    let mut ticker = JoinSet::new();
    ticker.spawn_local(tick_forever(
        Rc::clone(&shared),
        Duration::from_millis(config.tick_interval_ms.max(1)),
    ));
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    loop {
        // Finished tasks are reaped before the next accept, so the counts below are current.
        tokio::select! {
            biased;
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) if is_transient(&e) => continue,
                    Err(e) => return Err(e),
                };
                if connections.len() < config.max_connections {
                    connections.spawn_local(connection(stream, Rc::clone(&shared)));
                } else if refusals.len() < MAX_REFUSALS {
                    let reason = format!(
                        "the server is at its limit of {} connections",
                        config.max_connections
                    );
                    refusals.spawn_local(refuse(stream, reason));
                }
            }
        }
    }
}

/// Accept errors that concern one connection, not the listener.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// What every task of one server shares.
struct Shared<S: Storage> {
    broker: Rc<RefCell<Broker<S>>>,
    clock: Rc<dyn Clock>,
    sink: Rc<dyn EventSink>,
    /// The buffer the broker's events pass through on their way to the sink, empty between
    /// commands; the broker and the server swap it back and forth, so it is allocated once.
    events: RefCell<Vec<Event>>,
    max_pending: usize,
    sync_time: Duration,
    /// When the last sync scheduled on the disk starts and ends.
    last_sync: std::cell::Cell<Option<(tokio::time::Instant, tokio::time::Instant)>>,
}

impl<S: Storage> Shared<S> {
    /// Applies one command now and hands its events to the sink. The broker is borrowed only
    /// inside this call, never across an `.await`.
    fn apply(&self, command: Command) -> Result<Reply, BrokerError> {
        let now = self.clock.now();
        let result = self.broker.borrow_mut().apply(now, command);
        self.drain_events();
        result
    }

    /// Lets time pass. A tick can only be refused for a time in the past, which a monotonic
    /// clock never gives, and a refused tick changes nothing.
    fn tick(&self) {
        let now = self.clock.now();
        let _ = self.broker.borrow_mut().tick(now);
        self.drain_events();
    }

    fn drain_events(&self) {
        let mut events = self.events.borrow_mut();
        self.broker.borrow_mut().move_events_to(&mut events);
        if !events.is_empty() {
            self.sink.record(events.drain(..));
        }
    }

    fn epoch(&self) -> u32 {
        self.broker.borrow().epoch()
    }

    /// Waits until the sync that covers a change made now is done, if answers must wait.
    ///
    /// Syncs are group commits on one disk: a change made while a sync is running waits for
    /// the next one, which starts when the running one ends and covers every change made
    /// before it starts. So a change waits between one and two sync times, and the disk's
    /// throughput does not depend on how many connections there are.
    async fn wait_for_sync(&self) {
        if self.sync_time.is_zero()
            || self.broker.borrow().config().durability != mqsim_broker::Durability::Always
        {
            return;
        }
        let now = tokio::time::Instant::now();
        let done = match self.last_sync.get() {
            // The last sync scheduled has not started: join it.
            Some((start, end)) if now < start => end,
            // It is running: the next one starts when it ends.
            Some((_, end)) if now < end => {
                self.last_sync.set(Some((end, end + self.sync_time)));
                end + self.sync_time
            }
            // The disk is idle: start one now.
            _ => {
                self.last_sync.set(Some((now, now + self.sync_time)));
                now + self.sync_time
            }
        };
        tokio::time::sleep_until(done).await;
    }

    /// Answers one frame after the handshake, appending the response to `out`.
    ///
    /// A reply too large for a frame ends the connection: the command did take effect, so the
    /// only honest thing left is to leave its outcome unknown to the client.
    fn answer(&self, frame: ClientFrame, out: &mut Vec<u8>) -> Result<(), Ending> {
        match frame {
            ClientFrame::Request { id, command } => {
                let result = self.apply(command);
                wire::encode(&ServerFrame::Response { id, result }, out).map_err(|e| {
                    Ending::Goodbye(format!("cannot send the reply to request {id}: {e}"))
                })
            }
            ClientFrame::Hello { .. } => Err(Ending::Goodbye(
                "Hello may only be the first frame of a connection".into(),
            )),
        }
    }
}

/// Whether a request may change the broker's state and so waits for a sync under `always`:
/// everything but receives and ticks. A broker does not sync a delivery before sending
/// it (its lease is not durable state clients wait on), so receives never wait.
pub fn changes_state(frame: &ClientFrame) -> bool {
    match frame {
        ClientFrame::Request { command, .. } => command_changes_state(command),
        ClientFrame::Hello { .. } => false,
    }
}

/// [`changes_state`] of one command.
pub fn command_changes_state(command: &Command) -> bool {
    !matches!(command, Command::Receive { .. } | Command::Tick)
}

async fn tick_forever<S: Storage>(shared: Rc<Shared<S>>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    // After a stall (a paused host) one tick catches up with everything due: a burst of ticks
    // would do the same work several times.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        shared.tick();
    }
}

/// How a connection ends.
#[derive(Debug)]
enum Ending {
    /// The peer closed, the stream failed, or a frame was unreadable: close without a word.
    Quietly,
    /// Send `Goodbye` with this reason, then close.
    Goodbye(String),
}

impl From<WireError> for Ending {
    fn from(e: WireError) -> Self {
        match e {
            // The peer cannot be told anything useful over a stream that ended or failed.
            WireError::Truncated | WireError::Io(_) => Ending::Quietly,
            // A peer that sent garbage may still be reading, and the reason helps its author.
            WireError::Oversize { .. } | WireError::Malformed(_) => Ending::Goodbye(e.to_string()),
        }
    }
}

async fn connection<St, S>(stream: St, shared: Rc<Shared<S>>)
where
    St: Stream,
    S: Storage,
{
    let (mut read, mut write) = stream.into_halves();
    let ending = session(FrameReader::new(&mut read), &mut write, &shared).await;
    if let Ending::Goodbye(reason) = ending {
        goodbye(&mut read, &mut write, reason).await;
    }
    // The reading half goes first, as it did when the whole stream was dropped at once: it
    // may send a reset for unread input, before the writing half's close.
    drop(read);
    drop(write);
}

/// The handshake, then requests until the connection ends.
async fn session<R, W, S>(mut reader: FrameReader<R>, writer: &mut W, shared: &Shared<S>) -> Ending
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: Storage,
{
    let mut out = Vec::new();
    match reader.next::<ClientFrame>().await {
        Ok(Some(ClientFrame::Hello { version, .. })) if version == PROTOCOL_VERSION => {
            let welcome = ServerFrame::Welcome {
                version: PROTOCOL_VERSION,
                epoch: shared.epoch(),
            };
            if let Err(e) = wire::encode(&welcome, &mut out) {
                return Ending::Goodbye(e.to_string());
            }
        }
        Ok(Some(ClientFrame::Hello { version, .. })) => {
            return Ending::Goodbye(format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            ));
        }
        Ok(Some(ClientFrame::Request { .. })) => {
            return Ending::Goodbye("the first frame must be Hello".into());
        }
        Ok(None) => return Ending::Quietly,
        Err(e) => return e.into(),
    }
    // The Welcome shares its write with the answers to requests pipelined behind the Hello.
    // Requests read but not answered yet, oldest first.
    let mut pending: std::collections::VecDeque<ClientFrame> = std::collections::VecDeque::new();
    // One batch's requests; kept from batch to batch, empty in between, so that a batch does
    // not allocate a vector of its own (a batch is mostly a single request).
    let mut frames: Vec<ClientFrame> = Vec::new();
    loop {
        // Take every request already here, up to the limits, then (if one of them changes
        // state) wait for the sync that covers them, then answer them all in one write. A batch
        // starts with the frames left over from the last one, or else with the frame that
        // ended the wait for input; never both.
        frames.extend(pending.drain(..));
        let mut bad_frame = None;
        // With a sync time, requests pile up while a batch waits; take them all in. Without
        // one a batch never waits, and runs stay as they were before sync times existed.
        if !shared.sync_time.is_zero() {
            reader.fill_available(BATCH_BYTES);
        }
        while frames.len() < shared.max_pending {
            match reader.try_next::<ClientFrame>() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    bad_frame = Some(e.into());
                    break;
                }
            }
        }
        if frames.iter().any(changes_state) {
            shared.wait_for_sync().await;
        }
        let mut answered = 0;
        let mut ending = None;
        let mut batch = frames.drain(..);
        while ending.is_none() && out.len() < BATCH_BYTES {
            let Some(frame) = batch.next() else { break };
            ending = shared.answer(frame, &mut out).err();
            answered += 1;
        }
        // A full reply buffer leaves the rest for the next write; they were read, so they go
        // back in front of the reader's next frame.
        pending.extend(batch);
        // Requests before a bad frame are answered; the bad frame then ends the connection.
        let ending = ending.or(bad_frame);
        let full =
            answered >= shared.max_pending || out.len() >= BATCH_BYTES || !pending.is_empty();
        // Answers to requests before a bad frame were applied, so they are still sent.
        if !out.is_empty() {
            if writer.write_all(&out).await.is_err() {
                return Ending::Quietly;
            }
            out.clear();
            out.shrink_to(BATCH_BYTES);
        }
        if let Some(ending) = ending {
            return ending;
        }
        if full {
            // More requests may be buffered already; let other connections have a turn first.
            tokio::task::yield_now().await;
            continue;
        }
        // Nothing is left over here (it would have made the batch full), so the next frame
        // goes straight into the next batch rather than through `pending`: a frame is large,
        // and each move is a copy of it.
        debug_assert!(pending.is_empty() && frames.is_empty());
        match reader.next::<ClientFrame>().await {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return Ending::Quietly,
            Err(e) => return e.into(),
        }
    }
}

/// Turns away a connection beyond the limit.
async fn refuse<St: Stream>(stream: St, reason: String) {
    let (mut read, mut write) = stream.into_halves();
    goodbye(&mut read, &mut write, reason).await;
    drop(read);
    drop(write);
}

/// Sends `Goodbye`, closes the sending side and lingers: see [`LINGER`].
async fn goodbye<R, W>(read: &mut R, write: &mut W, reason: String)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    if wire::encode(&ServerFrame::Goodbye { reason }, &mut out).is_err() {
        return;
    }
    let _ = timeout(LINGER, async {
        if write.write_all(&out).await.is_ok() && write.shutdown().await.is_ok() {
            discard(read).await;
        }
    })
    .await;
}

/// Reads and drops input until the peer closes, the stream fails or [`LINGER_BYTES`] went by.
async fn discard<R: AsyncRead + Unpin>(read: &mut R) {
    let mut scratch = vec![0u8; 16 * 1024];
    let mut total = 0;
    while total < LINGER_BYTES {
        match read.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::BytesMut;
    use mqsim_broker::{BrokerConfig, DestinationConfig, MemDisk, PublishRequest, Time};

    use super::*;

    /// Time stands still: every command runs at the start of the run.
    struct Frozen;

    impl Clock for Frozen {
        fn now(&self) -> Time {
            Time::ZERO
        }
    }

    /// Keeps what is written and counts the writes.
    #[derive(Default)]
    struct Counting {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn shared(max_pending: usize) -> Shared<MemDisk> {
        let config = BrokerConfig::new(Default::default(), vec![DestinationConfig::queue("q")]);
        let broker = Broker::open(config, MemDisk::new(), Time::ZERO).unwrap();
        Shared {
            broker: Rc::new(RefCell::new(broker)),
            clock: Rc::new(Frozen),
            sink: Rc::new(()),
            events: RefCell::new(Vec::new()),
            max_pending,
            sync_time: Duration::ZERO,
            last_sync: std::cell::Cell::new(None),
        }
    }

    /// A Hello and `n` publishes, as one client write.
    fn pipelined(n: u64) -> Vec<u8> {
        let mut input = Vec::new();
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "unit".into(),
        };
        wire::encode(&hello, &mut input).unwrap();
        for id in 0..n {
            let command = Command::Publish {
                destination: "q".into(),
                request: PublishRequest::new(vec![1u8; 8]),
            };
            wire::encode(&ClientFrame::Request { id, command }, &mut input).unwrap();
        }
        input
    }

    /// Runs a session over `input` and returns the frames written and the number of writes.
    async fn run(input: &[u8], max_pending: usize) -> (Vec<ServerFrame>, usize) {
        let mut out = Counting::default();
        let ending = session(FrameReader::new(input), &mut out, &shared(max_pending)).await;
        assert!(matches!(ending, Ending::Quietly), "{ending:?}");
        let mut buf = BytesMut::from(&out.bytes[..]);
        let mut frames = Vec::new();
        while let Some(frame) = wire::decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        (frames, out.writes)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn buffered_requests_share_one_write() {
        let (frames, writes) = run(&pipelined(5), 4096).await;
        assert_eq!(frames.len(), 6, "a Welcome and five responses");
        assert!(matches!(frames[0], ServerFrame::Welcome { .. }));
        assert_eq!(writes, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn max_pending_requests_splits_a_burst() {
        let (frames, writes) = run(&pipelined(5), 2).await;
        assert_eq!(frames.len(), 6);
        for (id, frame) in (0u64..).zip(&frames[1..]) {
            assert!(
                matches!(frame, ServerFrame::Response { id: got, result: Ok(_) } if *got == id),
                "{frame:?}"
            );
        }
        assert_eq!(
            writes, 3,
            "the Welcome and two answers, two answers, one answer"
        );
    }
}
