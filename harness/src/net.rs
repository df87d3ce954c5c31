//! The network and the clock, abstracted so that one server and one client serve both the
//! simulator (turmoil's network and simulated time) and the real world (tokio's sockets and
//! clock). Everything above this module is written once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mqsim_broker::Time;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection whose halves can be owned by different tasks.
///
/// `tokio::io::split` works on any stream but puts it behind a lock that every read and write
/// takes; the sockets' own splits hand out halves that need none.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The half that reads.
    type Read: AsyncRead + Unpin + 'static;
    /// The half that writes. Dropping it closes the sending side, as dropping the whole
    /// stream would.
    type Write: AsyncWrite + Unpin + 'static;
    /// Splits the stream into its halves.
    fn into_halves(self) -> (Self::Read, Self::Write);
}

impl Stream for turmoil::net::TcpStream {
    type Read = turmoil::net::tcp::OwnedReadHalf;
    type Write = turmoil::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Stream for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Accepts connections.
pub trait Listener {
    /// The connection type.
    type Stream: Stream;
    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;
}

/// Opens connections.
pub trait Connector {
    /// The connection type.
    type Stream: Stream;
    /// Connects to `addr` (a `host:port` that the network resolves).
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>>;
}

/// Where the time comes from: the broker takes it with every command.
pub trait Clock {
    /// Now, as time since the start of the run.
    fn now(&self) -> Time;
}

impl Listener for turmoil::net::TcpListener {
    type Stream = turmoil::net::TcpStream;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> {
        turmoil::net::TcpListener::accept(self)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // The server answers each batch of requests with one write; Nagle's algorithm would hold
        // that write back until the previous one is acknowledged, adding a delayed-ACK pause to
        // pipelined exchanges. A socket that refuses the option still works, only slower.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

/// Connects over turmoil's simulated network.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimConnector;

impl Connector for SimConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

/// Connects over the operating system's network.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioConnector;

impl Connector for TokioConnector {
    type Stream = tokio::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // Requests are small and latency matters more than packet count on loopback.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Simulated time: the simulation's elapsed time, the same on every host and across host
/// restarts, so broker timestamps, client timestamps and the history share one time line.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Time {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        Time(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// [`SimClock`]'s time, read more cheaply by the software of one host incarnation.
///
/// `turmoil::sim_elapsed` finds the current host in turmoil's world (a thread-local and a
/// SipHash lookup) on every call, which at one message per tick was about 4 % of a run's
/// instructions. Within one incarnation of a host, simulated time and the host runtime's paused
/// tokio clock advance together: turmoil ticks the runtime by exactly one tick per step and
/// counts the same tick in its elapsed time. So the simulated time is the time read once at the
/// start plus the tokio clock's advance since, which is what this clock returns. A restart makes
/// a new runtime with a new tokio clock, so a clock is made by the incarnation's own software,
/// inside the simulation, and never outlives it; debug builds check every reading against
/// [`SimClock`].
#[derive(Debug, Clone, Copy)]
pub struct HostClock {
    base: tokio::time::Instant,
    base_ns: u64,
}

impl HostClock {
    /// A clock for the host whose software is running now. It must be made and read by that
    /// software, inside the simulation: anywhere else the tokio clock it adds is not the one
    /// turmoil advances, and the readings would not be simulated time.
    pub fn start() -> Self {
        HostClock {
            base: tokio::time::Instant::now(),
            base_ns: SimClock.now().as_nanos(),
        }
    }

    /// The host runtime's tokio instant at simulated time `t` (in nanoseconds), for timers set
    /// to a simulated time. A time before this clock started is its start.
    pub fn instant_of(&self, t: u64) -> tokio::time::Instant {
        self.base + Duration::from_nanos(t.saturating_sub(self.base_ns))
    }
}

impl Clock for HostClock {
    fn now(&self) -> Time {
        let advance = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let now = Time(self.base_ns.saturating_add(advance));
        debug_assert_eq!(now, SimClock.now(), "a host clock drifted from turmoil's");
        now
    }
}

/// Real time since the clock was made: for the real server only, never in a simulation.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Time {
        Time(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}
