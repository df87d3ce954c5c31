//! The broker server inside a turmoil simulation, spoken to in raw frames, and once over real
//! loopback sockets.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use mqsim_broker::{
    AckMode, Broker, BrokerConfig, BrokerError, Command, ConsumerId, Delivery, DestinationConfig,
    Durability, Event, EventKind, LeaseEnd, MemDisk, PublishRequest, Reply,
};
use mqsim_harness::net::{Clock, SimClock, TokioClock};
use mqsim_harness::server::{EventSink, ServerConfig, serve};
use mqsim_harness::wire::{self, ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const PORT: u16 = 7000;

type Events = Rc<RefCell<Vec<Event>>>;

fn broker_config() -> BrokerConfig {
    BrokerConfig::new(
        Durability::Always,
        vec![DestinationConfig {
            visibility_timeout_ms: 100,
            ..DestinationConfig::queue("q")
        }],
    )
}

fn sim() -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .rng_seed(1)
        .epoch(UNIX_EPOCH)
        .simulation_duration(Duration::from_secs(60))
        .build()
}

/// Runs a server on host "broker" and returns the events it records.
fn start_broker(sim: &mut turmoil::Sim<'static>, config: ServerConfig) -> Events {
    let events: Events = Rc::default();
    let sink = Rc::clone(&events);
    sim.host("broker", move || {
        let sink = Rc::clone(&sink);
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let broker = Broker::open(broker_config(), MemDisk::new(), SimClock.now())?;
            let sink: Rc<dyn EventSink> = sink;
            serve(
                listener,
                Rc::new(RefCell::new(broker)),
                Rc::new(SimClock),
                sink,
                config,
            )
            .await?;
            Ok(())
        }
    });
    events
}

/// A raw connection: frames out, frames in, nothing else.
struct Conn<R, W> {
    reader: FrameReader<R>,
    writer: W,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    /// Sends `frames` in one write.
    async fn send(&mut self, frames: &[ClientFrame]) {
        let mut out = Vec::new();
        for frame in frames {
            wire::encode(frame, &mut out).unwrap();
        }
        self.writer.write_all(&out).await.unwrap();
    }

    /// The next frame; `None` once the server closed.
    async fn recv(&mut self) -> Option<ServerFrame> {
        self.reader.next().await.unwrap()
    }

    async fn hello(&mut self, version: u32) -> ServerFrame {
        let client = "test".into();
        self.send(&[ClientFrame::Hello { version, client }]).await;
        self.recv().await.unwrap()
    }

    async fn call(&mut self, id: u64, command: Command) -> Result<Reply, BrokerError> {
        self.send(&[ClientFrame::Request { id, command }]).await;
        match self.recv().await {
            Some(ServerFrame::Response { id: got, result }) if got == id => result,
            other => panic!("expected the response to {id}, got {other:?}"),
        }
    }

    /// Expects a `Goodbye` whose reason mentions `about`, then the end of the stream.
    async fn expect_goodbye(&mut self, about: &str) {
        match self.recv().await {
            Some(ServerFrame::Goodbye { reason }) => assert!(reason.contains(about), "{reason}"),
            other => panic!("expected Goodbye about {about:?}, got {other:?}"),
        }
        assert_eq!(self.recv().await, None);
    }
}

type SimConn = Conn<turmoil::net::tcp::OwnedReadHalf, turmoil::net::tcp::OwnedWriteHalf>;

async fn connect() -> SimConn {
    let (read, writer) = turmoil::net::TcpStream::connect(("broker", PORT))
        .await
        .unwrap()
        .into_split();
    Conn {
        reader: FrameReader::new(read),
        writer,
    }
}

/// A connection past the handshake.
async fn ready() -> SimConn {
    let mut conn = connect().await;
    let welcome = conn.hello(PROTOCOL_VERSION).await;
    assert_eq!(
        welcome,
        ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            epoch: 1
        }
    );
    conn
}

fn publish(payload: &str) -> Command {
    Command::Publish {
        destination: "q".into(),
        request: PublishRequest::new(payload.as_bytes().to_vec()),
    }
}

fn receive() -> Command {
    Command::Receive {
        destination: "q".into(),
        group: None,
        consumer: ConsumerId(1),
        max_messages: 10,
        visibility_timeout_ms: None,
        ack_mode: AckMode::Explicit,
    }
}

fn deliveries(result: Result<Reply, BrokerError>) -> Vec<Delivery> {
    match result {
        Ok(Reply::Delivered { deliveries }) => deliveries,
        other => panic!("expected deliveries, got {other:?}"),
    }
}

fn kinds(events: &Events) -> Vec<&'static str> {
    events
        .borrow()
        .iter()
        .map(|e| match e.kind {
            EventKind::Published { .. } => "published",
            EventKind::Delivered { .. } => "delivered",
            EventKind::Acked { .. } => "acked",
            EventKind::LeaseEnded { .. } => "lease-ended",
            EventKind::Recovered { .. } => "recovered",
            _ => "other",
        })
        .collect()
}

#[test]
fn handshake_publish_receive_ack() {
    let mut sim = sim();
    let events = start_broker(&mut sim, ServerConfig::default());
    let seen = Rc::clone(&events);
    sim.client("client", async move {
        let mut conn = ready().await;
        let confirm = conn.call(1, publish("hello")).await;
        assert!(
            matches!(confirm, Ok(Reply::Published { .. })),
            "{confirm:?}"
        );
        let got = deliveries(conn.call(2, receive()).await);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], b"hello");
        let receipt = got[0].receipt.unwrap();
        assert_eq!(
            conn.call(3, Command::Ack { receipt }).await,
            Ok(Reply::Done)
        );
        assert!(deliveries(conn.call(4, receive()).await).is_empty());
        // A refused command is an answer, not a broken connection.
        let stale = conn.call(5, Command::Ack { receipt }).await;
        assert_eq!(stale, Err(BrokerError::StaleReceipt));
        // The broker's start comes first: the server drains it before serving anything.
        assert_eq!(
            kinds(&seen),
            ["recovered", "published", "delivered", "acked"]
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn pipelined_requests_are_answered_by_id() {
    let mut sim = sim();
    start_broker(&mut sim, ServerConfig::default());
    sim.client("client", async move {
        let mut conn = connect().await;
        // The handshake and ten requests in one write, with ids in no particular order.
        let mut frames = vec![ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "pipeline".into(),
        }];
        let ids: Vec<u64> = (0..10).map(|n| (n * 7919) % 101).collect();
        for (n, id) in ids.iter().enumerate() {
            let command = publish(&format!("m{n}"));
            frames.push(ClientFrame::Request { id: *id, command });
        }
        conn.send(&frames).await;
        assert!(matches!(
            conn.recv().await,
            Some(ServerFrame::Welcome { .. })
        ));
        for (n, id) in ids.iter().enumerate() {
            match conn.recv().await {
                Some(ServerFrame::Response {
                    id: got,
                    result: Ok(Reply::Published { confirm }),
                }) => {
                    assert_eq!(got, *id);
                    assert_eq!(confirm.offset, n as u64, "applied in the order sent");
                }
                other => panic!("expected the response to {id}, got {other:?}"),
            }
        }
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn out_of_order_handshakes_get_goodbye() {
    let mut sim = sim();
    start_broker(&mut sim, ServerConfig::default());
    sim.client("client", async move {
        let mut conn = connect().await;
        let reply = conn.hello(PROTOCOL_VERSION + 1).await;
        match reply {
            ServerFrame::Goodbye { reason } => assert!(reason.contains("version"), "{reason}"),
            other => panic!("expected Goodbye, got {other:?}"),
        }
        assert_eq!(conn.recv().await, None);

        let mut conn = connect().await;
        conn.send(&[ClientFrame::Request {
            id: 1,
            command: Command::Tick,
        }])
        .await;
        conn.expect_goodbye("first frame must be Hello").await;

        let mut conn = ready().await;
        conn.send(&[ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "again".into(),
        }])
        .await;
        conn.expect_goodbye("first frame").await;
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_bad_frame_closes_only_its_own_connection() {
    let mut sim = sim();
    start_broker(&mut sim, ServerConfig::default());
    sim.client("client", async move {
        let mut good = ready().await;

        // A body that is not a frame, after a valid request that must still be answered.
        let mut bad = ready().await;
        let mut out = Vec::new();
        let command = publish("before");
        wire::encode(&ClientFrame::Request { id: 1, command }, &mut out).unwrap();
        out.extend_from_slice(&[0, 0, 0, 2, 0xff, 0xff]);
        bad.writer.write_all(&out).await.unwrap();
        assert!(matches!(
            bad.recv().await,
            Some(ServerFrame::Response {
                id: 1,
                result: Ok(_)
            })
        ));
        bad.expect_goodbye("malformed").await;

        // A length prefix far beyond the limit.
        let mut oversize = ready().await;
        oversize
            .writer
            .write_all(&u32::MAX.to_be_bytes())
            .await
            .unwrap();
        oversize.expect_goodbye("exceeds the limit").await;

        // Half a frame, then the end of the stream.
        let mut truncated = ready().await;
        let mut out = Vec::new();
        let command = publish("never");
        wire::encode(&ClientFrame::Request { id: 1, command }, &mut out).unwrap();
        truncated
            .writer
            .write_all(&out[..out.len() / 2])
            .await
            .unwrap();
        truncated.writer.shutdown().await.unwrap();
        assert_eq!(truncated.recv().await, None);

        // The first connection and the broker carry on; only the one valid publish happened.
        match good.call(9, publish("after")).await {
            Ok(Reply::Published { confirm }) => assert_eq!(confirm.offset, 1),
            other => panic!("expected a confirm, got {other:?}"),
        }
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn connections_beyond_the_limit_are_turned_away() {
    let mut sim = sim();
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    start_broker(&mut sim, config);
    sim.client("client", async move {
        let first = ready().await;
        let mut second = connect().await;
        second.expect_goodbye("limit of 1 connections").await;
        drop(first);
        // The slot is free once the server has seen the first connection close.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut third = ready().await;
        assert!(third.call(1, publish("x")).await.is_ok());
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn the_ticker_expires_leases_without_traffic() {
    let mut sim = sim();
    let events = start_broker(&mut sim, ServerConfig::default());
    let seen = Rc::clone(&events);
    sim.client("client", async move {
        let mut conn = ready().await;
        conn.call(1, publish("lease")).await.unwrap();
        let first = deliveries(conn.call(2, receive()).await);
        assert_eq!(first[0].delivery_count, 1);
        // Nothing is sent while the 100 ms lease runs out; only the ticker can end it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let expired = seen.borrow().iter().any(|e| {
            matches!(
                e.kind,
                EventKind::LeaseEnded {
                    why: LeaseEnd::Expired,
                    ..
                }
            )
        });
        assert!(expired, "no lease expiry recorded: {:?}", kinds(&seen));
        let second = deliveries(conn.call(3, receive()).await);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].delivery_count, 2);
        assert_eq!(second[0].message_id, first[0].message_id);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn the_real_listener_serves_over_loopback() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clock = TokioClock::start();
        let broker = Broker::open(broker_config(), MemDisk::new(), clock.now()).unwrap();
        let server = tokio::task::spawn_local(serve(
            listener,
            Rc::new(RefCell::new(broker)),
            Rc::new(clock),
            Rc::new(()),
            ServerConfig::default(),
        ));
        let (read, writer) = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap()
            .into_split();
        let mut conn = Conn {
            reader: FrameReader::new(read),
            writer,
        };
        let test = async {
            assert!(matches!(
                conn.hello(PROTOCOL_VERSION).await,
                ServerFrame::Welcome { epoch: 1, .. }
            ));
            conn.call(1, publish("real")).await.unwrap();
            let got = deliveries(conn.call(2, receive()).await);
            assert_eq!(&got[0].payload[..], b"real");
            let receipt = got[0].receipt.unwrap();
            assert_eq!(
                conn.call(3, Command::Ack { receipt }).await,
                Ok(Reply::Done)
            );
        };
        tokio::time::timeout(Duration::from_secs(30), test)
            .await
            .expect("the exchange should finish well within 30 s");
        server.abort();
    });
}
