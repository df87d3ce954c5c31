//! The `broker` and `client` verbs: a real broker on loopback and a minimal client, so that
//! people can poke the reference broker by hand.
//!
//! The broker is the simulation's server on tokio's sockets and clock, with its log in memory.
//! The client is deliberately separate from the harness's client library: one connection, one
//! request at a time, raw frames, so it stays small and shows the protocol plainly.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use mqsim_broker::{
    AckMode, Broker, BrokerConfig, BrokerError, Command, ConsumerId, Delivery, DestinationConfig,
    Durability, MemDisk, PublishRequest, Reply,
};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Duration, timeout};

use crate::commands::Streams;
use crate::diagnostic::{FileError, Located};
use crate::exit::Exit;
use crate::net::{Clock, TokioClock};
use crate::server::{ServerConfig, serve};
use crate::source;
use crate::wire::{self, ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame};

/// How long the client waits for its whole exchange before giving up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `mqsim client` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poke {
    /// Publish one message.
    Publish {
        destination: String,
        payload: String,
        key: Option<String>,
    },
    /// Receive up to `max` messages and, unless `no_ack`, acknowledge them.
    Receive {
        destination: String,
        group: Option<String>,
        max: u32,
        consumer: u64,
        no_ack: bool,
    },
}

/// The configuration without `--config`: a queue `q` and a topic `t` with a group `g`.
pub fn default_config() -> BrokerConfig {
    BrokerConfig::new(
        Durability::default(),
        vec![
            DestinationConfig::queue("q"),
            DestinationConfig::topic("t", &["g"]),
        ],
    )
}

/// Reads and checks a broker configuration file (YAML).
pub fn load_config(path: &Path) -> Result<BrokerConfig, FileError> {
    let bytes = source::read_limited(path)?;
    let content = |at| FileError::Content {
        path: path.to_path_buf(),
        at,
    };
    let text = source::decode(&bytes).map_err(content)?;
    let config: BrokerConfig =
        serde_norway::from_str(text).map_err(|e| content(Located::from_yaml(&e, text)))?;
    // Range and cross-reference errors concern the file as a whole rather than one position, so
    // they are reported at its start, as other position-less errors are.
    config
        .validate()
        .map_err(|e| content(Located::new(1, 1, e.to_string())))?;
    Ok(config)
}

/// `mqsim broker`: serves until the process is stopped. Prints `listening on ADDR` once the
/// socket is bound, so a script that asked for port 0 learns the real one.
pub fn broker<O: Write, E: Write>(
    listen: SocketAddr,
    config: Option<&Path>,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    // The broker has no authentication, so it only ever listens where nobody else can reach it.
    if !listen.ip().is_loopback() {
        writeln!(
            io.err,
            "mqsim: --listen {listen}: only loopback addresses are allowed (127.0.0.1, ::1)"
        )?;
        return Ok(Exit::BadInput);
    }
    let config = match config.map(load_config).transpose() {
        Ok(config) => config.unwrap_or_else(default_config),
        Err(e) => {
            writeln!(io.err, "{e}")?;
            return Ok(Exit::BadInput);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The server spawns its tasks with `spawn_local`, so it runs inside a `LocalSet`.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(e) => {
                writeln!(io.err, "mqsim: cannot listen on {listen}: {e}")?;
                return Ok(Exit::BadInput);
            }
        };
        let clock = TokioClock::start();
        let broker = match Broker::open(config, MemDisk::new(), clock.now()) {
            Ok(broker) => broker,
            Err(e) => {
                writeln!(io.err, "mqsim: cannot start the broker: {e}")?;
                return Ok(Exit::BadInput);
            }
        };
        writeln!(io.out, "listening on {}", listener.local_addr()?)?;
        io.out.flush()?;
        let broker = Rc::new(RefCell::new(broker));
        let served = serve(
            listener,
            broker,
            Rc::new(clock),
            Rc::new(()),
            ServerConfig::default(),
        );
        match served.await {
            // `serve` only returns when the listener fails.
            Ok(()) => Ok(Exit::Pass),
            Err(e) => {
                writeln!(io.err, "mqsim: the listener failed: {e}")?;
                Ok(Exit::BadInput)
            }
        }
    })
}

/// `mqsim client`: one request (and the acks of what it received) over one connection.
pub fn client<O: Write, E: Write>(
    connect: SocketAddr,
    poke: &Poke,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        timeout(CLIENT_TIMEOUT, exchange(connect, poke))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CLIENT_TIMEOUT:?}")))
    });
    match outcome {
        Ok(Done::Published(line)) => writeln!(io.out, "{line}")?,
        Ok(Done::Received(deliveries)) => {
            for delivery in &deliveries {
                writeln!(io.out, "{}", describe(delivery))?;
            }
            if deliveries.is_empty() {
                writeln!(io.err, "mqsim: no messages")?;
            }
        }
        Err(e) => {
            writeln!(io.err, "mqsim: {connect}: {e}")?;
            return Ok(Exit::BadInput);
        }
    }
    Ok(Exit::Pass)
}

/// What a successful exchange produced.
enum Done {
    Published(String),
    Received(Vec<Delivery>),
}

async fn exchange(connect: SocketAddr, poke: &Poke) -> Result<Done, String> {
    let mut conn = Conn::open(connect).await?;
    match poke {
        Poke::Publish {
            destination,
            payload,
            key,
        } => {
            let mut request = PublishRequest::new(payload.clone().into_bytes());
            request.key = key.clone();
            let destination = destination.clone();
            match conn
                .call(Command::Publish {
                    destination,
                    request,
                })
                .await?
            {
                Reply::Published { confirm } => Ok(Done::Published(format!(
                    "published message {} to partition {} at offset {}{}",
                    confirm.message_id.0,
                    confirm.partition,
                    confirm.offset,
                    if confirm.duplicate {
                        " (duplicate)"
                    } else {
                        ""
                    }
                ))),
                other => Err(format!("unexpected reply {other:?}")),
            }
        }
        Poke::Receive {
            destination,
            group,
            max,
            consumer,
            no_ack,
        } => {
            let command = Command::Receive {
                destination: destination.clone(),
                group: group.clone(),
                consumer: ConsumerId(*consumer),
                max_messages: *max,
                visibility_timeout_ms: None,
                ack_mode: AckMode::Explicit,
            };
            let Reply::Delivered { deliveries } = conn.call(command).await? else {
                return Err("unexpected reply to a receive".into());
            };
            if !no_ack {
                for receipt in deliveries.iter().filter_map(|d| d.receipt) {
                    conn.call(Command::Ack { receipt }).await?;
                }
            }
            Ok(Done::Received(deliveries))
        }
    }
}

/// One line per delivery; the payload is quoted so that whitespace and odd bytes show.
fn describe(d: &Delivery) -> String {
    format!(
        "message {} partition {} offset {} delivery {} key {} payload {:?}",
        d.message_id.0,
        d.partition,
        d.offset,
        d.delivery_count,
        d.key.as_deref().unwrap_or("-"),
        String::from_utf8_lossy(&d.payload)
    )
}

/// One connection, one request at a time.
struct Conn {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (read, writer) = stream.into_split();
        let mut conn = Conn {
            reader: FrameReader::new(read),
            writer,
            next_id: 0,
        };
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "mqsim client".into(),
        };
        conn.send(&hello).await?;
        match conn.recv().await? {
            ServerFrame::Welcome { .. } => Ok(conn),
            other => Err(format!("expected Welcome, got {other:?}")),
        }
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), String> {
        let mut out = Vec::new();
        wire::encode(frame, &mut out).map_err(|e| e.to_string())?;
        self.writer
            .write_all(&out)
            .await
            .map_err(|e| format!("cannot send: {e}"))
    }

    async fn recv(&mut self) -> Result<ServerFrame, String> {
        match self.reader.next().await {
            Ok(Some(ServerFrame::Goodbye { reason })) => {
                Err(format!("closed by the broker: {reason}"))
            }
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("the broker closed the connection".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends a command and waits for its answer; a refusal by the broker is an error here.
    async fn call(&mut self, command: Command) -> Result<Reply, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientFrame::Request { id, command }).await?;
        match self.recv().await? {
            ServerFrame::Response { id: got, result } if got == id => {
                result.map_err(|e: BrokerError| format!("refused by the broker: {e}"))
            }
            other => Err(format!(
                "expected the response to request {id}, got {other:?}"
            )),
        }
    }
}
