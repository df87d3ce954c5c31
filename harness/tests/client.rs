//! The client library inside turmoil simulations (and once over real loopback sockets),
//! against a tiny server written here that speaks raw frames. Owning the server lets each test
//! script the fault it needs: answers out of order, answers that never come or come late, a
//! dropped connection, a crashed or stopped host, a refused handshake.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use mqsim_broker::{
    AckMode, Broker, BrokerConfig, BrokerError, Command, ConsumerId, DestinationConfig, Durability,
    MemDisk, PublishRequest, Reply, Time,
};
use mqsim_harness::client::{Client, ClientConfig, ClientStats};
use mqsim_harness::driver::{Driver, DriverExt, Failure, Indeterminate, Outcome};
use mqsim_harness::net::{Clock, Listener, SimClock, SimConnector, TokioConnector};
use mqsim_harness::wire::{ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame, encode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PORT: u16 = 7000;
const ADDR: &str = "broker:7000";

// ---------------------------------------------------------------------------------------------
// The test server.

/// What the test server does with one request.
enum Action {
    Answer(Result<Reply, BrokerError>),
    AnswerAfter(Duration, Result<Reply, BrokerError>),
    Ignore,
    HangUp,
}

/// The scripted behaviour. It is keyed by the destination of a `Redrive` because that is the
/// one command whose reply (`Redriven { count }`) echoes a number the test chooses, so every
/// reply shows which request it answers.
fn scripted(command: Command) -> Action {
    let Command::Redrive {
        destination,
        max_messages: n,
    } = command
    else {
        return Action::Answer(Ok(Reply::Done));
    };
    match destination.as_str() {
        "refuse" => Action::Answer(Err(BrokerError::UnknownDestination(destination))),
        "silent" => Action::Ignore,
        // Answers after `n` milliseconds.
        "slow" => Action::AnswerAfter(
            Duration::from_millis(n.into()),
            Ok(Reply::Redriven { count: n }),
        ),
        "hang-up" => Action::HangUp,
        _ => Action::Answer(Ok(Reply::Redriven { count: n })),
    }
}

/// What the server saw and did, for the tests to check.
#[derive(Debug, Default)]
struct ServerLog {
    /// The client name of every `Hello`.
    hellos: Vec<String>,
    /// The request ids that each read delivered, in order.
    batches: Vec<Vec<u64>>,
    /// The ids of the responses sent, in the order they were sent.
    answered: Vec<u64>,
}

#[derive(Clone)]
struct Server {
    respond: Rc<dyn Fn(Command) -> Action>,
    log: Rc<RefCell<ServerLog>>,
    /// Whether `Hello` gets `Welcome` (or `Goodbye`).
    welcome: bool,
}

impl Server {
    fn scripted() -> Self {
        Server {
            respond: Rc::new(scripted),
            log: Rc::default(),
            welcome: true,
        }
    }
}

async fn serve<L: Listener>(listener: L, server: Server) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::task::spawn_local(serve_connection(stream, server.clone()));
    }
}

/// Serves one connection. Each read's requests are answered newest first, so pipelined
/// requests always get their responses out of order.
async fn serve_connection<S>(stream: S, server: Server)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut frames = FrameReader::new(read);
    let Ok(Some(ClientFrame::Hello { client, .. })) = frames.next::<ClientFrame>().await else {
        return;
    };
    server.log.borrow_mut().hellos.push(client);
    let greeting = if server.welcome {
        ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            epoch: 1,
        }
    } else {
        ServerFrame::Goodbye {
            reason: "no entry".into(),
        }
    };
    let mut out = Vec::new();
    encode(&greeting, &mut out).unwrap();
    if write.write_all(&out).await.is_err() || !server.welcome {
        return;
    }
    // One writer takes responses from a channel, so that delayed answers can come from other
    // tasks and answers produced together share one write.
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerFrame>();
    let log = server.log.clone();
    let writer = tokio::task::spawn_local(async move {
        while let Some(frame) = rx.recv().await {
            let mut out = Vec::new();
            let mut next = Some(frame);
            while let Some(frame) = next {
                if let ServerFrame::Response { id, .. } = &frame {
                    log.borrow_mut().answered.push(*id);
                }
                encode(&frame, &mut out).unwrap();
                next = rx.try_recv().ok();
            }
            if write.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    'connection: loop {
        let Ok(Some(first)) = frames.next::<ClientFrame>().await else {
            break;
        };
        let mut requests = Vec::new();
        let mut next = Some(first);
        while let Some(frame) = next {
            if let ClientFrame::Request { id, command } = frame {
                requests.push((id, command));
            }
            next = frames.try_next::<ClientFrame>().ok().flatten();
        }
        let ids = requests.iter().map(|(id, _)| *id).collect();
        server.log.borrow_mut().batches.push(ids);
        for (id, command) in requests.into_iter().rev() {
            match (server.respond)(command) {
                Action::Answer(result) => {
                    let _ = tx.send(ServerFrame::Response { id, result });
                }
                Action::AnswerAfter(delay, result) => {
                    let tx = tx.clone();
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(ServerFrame::Response { id, result });
                    });
                }
                Action::Ignore => {}
                Action::HangUp => break 'connection,
            }
        }
    }
    // Stopping the writer drops the write half; the read half goes when this returns, and the
    // stream closes with both.
    writer.abort();
}

// ---------------------------------------------------------------------------------------------
// Simulation helpers.

/// A simulation with a fixed one-millisecond network latency, so that the times the tests
/// assert do not depend on latency draws.
fn sim<'a>(seed: u64) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH)
        .simulation_duration(Duration::from_secs(60))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .build()
}

/// Adds the host "broker" running `server`. While `listening` is false, a (re)started host
/// runs but binds no port, so connection attempts are refused.
fn add_broker(sim: &mut turmoil::Sim<'_>, server: Server, listening: Rc<Cell<bool>>) {
    sim.host("broker", move || {
        let server = server.clone();
        let listening = listening.get();
        async move {
            if !listening {
                std::future::pending::<()>().await;
            }
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            serve(listener, server).await;
            Ok(())
        }
    });
}

fn sim_client(config: ClientConfig, seed: u64) -> Client<SimConnector> {
    Client::new(
        SimConnector,
        ADDR.to_owned(),
        config,
        ChaCha8Rng::seed_from_u64(seed),
    )
}

fn redrive(destination: &str, n: u32) -> Command {
    Command::Redrive {
        destination: destination.into(),
        max_messages: n,
    }
}

fn redriven(n: u32) -> Outcome<Reply> {
    Outcome::Ok(Reply::Redriven { count: n })
}

fn now() -> Duration {
    turmoil::sim_elapsed().expect("inside the simulation")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn is_lost(outcome: &Outcome<Reply>) -> bool {
    matches!(outcome, Outcome::Info(Indeterminate::ConnectionLost(_)))
}

fn unavailable_reason(outcome: &Outcome<Reply>) -> &str {
    match outcome {
        Outcome::Fail(Failure::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn pipelined_calls_share_a_write_and_match_responses_answered_out_of_order() -> turmoil::Result {
    let mut sim = sim(1);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let config = ClientConfig {
            name: "producer-1".into(),
            ..ClientConfig::default()
        };
        let client = sim_client(config, 1);
        // The first call connects.
        assert_eq!(client.call(redrive("echo", 100)).await, redriven(100));
        // Ten calls in flight at once; every third is refused by the broker.
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let client = client.clone();
                let destination = if n % 3 == 0 { "refuse" } else { "echo" };
                tokio::task::spawn_local(async move { client.call(redrive(destination, n)).await })
            })
            .collect();
        for (n, call) in (0..).zip(calls) {
            let expected = if n % 3 == 0 {
                Outcome::Fail(Failure::Broker(BrokerError::UnknownDestination(
                    "refuse".into(),
                )))
            } else {
                redriven(n)
            };
            assert_eq!(call.await?, expected, "call {n}");
        }
        let expected = ClientStats {
            connects: 1,
            requests: 11,
            ..ClientStats::default()
        };
        assert_eq!(client.stats(), expected);
        Ok(())
    });
    sim.run()?;
    let log = log.borrow();
    assert_eq!(log.hellos, ["producer-1"]);
    let pipelined: Vec<u64> = (2..=11).collect();
    assert_eq!(
        log.batches,
        [vec![1], pipelined.clone()],
        "the ten calls made together reach the server in one write"
    );
    let reversed: Vec<u64> = pipelined.into_iter().rev().collect();
    assert_eq!(log.answered[1..], reversed, "answered newest first");
    Ok(())
}

#[test]
fn calls_made_before_the_connection_exists_share_one_attempt_and_one_write() -> turmoil::Result {
    let mut sim = sim(9);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let client = sim_client(ClientConfig::default(), 9);
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let client = client.clone();
                tokio::task::spawn_local(async move { client.call(redrive("echo", n)).await })
            })
            .collect();
        for (n, call) in (0..).zip(calls) {
            assert_eq!(call.await?, redriven(n));
        }
        assert_eq!(client.stats().connects, 1);
        Ok(())
    });
    sim.run()?;
    let log = log.borrow();
    assert_eq!(log.hellos.len(), 1, "one connection attempt");
    assert_eq!(log.batches, [(1..=10).collect::<Vec<u64>>()]);
    Ok(())
}

#[test]
fn an_abandoned_attempt_lets_a_waiting_call_make_its_own() -> turmoil::Result {
    let mut sim = sim(10);
    add_broker(&mut sim, Server::scripted(), Rc::new(Cell::new(true)));
    // A crashed host drops every packet, so attempts last until the connect timeout.
    sim.crash("broker");
    sim.client("producer", async {
        let config = ClientConfig {
            connect_timeout_ms: 300,
            ..ClientConfig::default()
        };
        let client = sim_client(config, 10);
        let start = Instant::now();
        let waiting = {
            let client = client.clone();
            tokio::task::spawn_local(async move {
                // Yield first, so that the call below is the one making the attempt.
                tokio::task::yield_now().await;
                let outcome = client.call(redrive("echo", 1)).await;
                (outcome, Instant::now())
            })
        };
        // The caller gives up after 50 ms, dropping the call and its attempt.
        let abandoned = tokio::time::timeout(ms(50), client.call(redrive("echo", 2))).await;
        assert!(abandoned.is_err());
        let (outcome, done) = waiting.await?;
        assert!(
            unavailable_reason(&outcome).contains("timed out"),
            "{outcome:?}"
        );
        assert_eq!(
            done - start,
            ms(350),
            "its own attempt, started when the first was dropped"
        );
        let expected = ClientStats {
            connect_failures: 1,
            ..ClientStats::default()
        };
        assert_eq!(
            client.stats(),
            expected,
            "the abandoned attempt is not a failure"
        );
        Ok(())
    });
    sim.run()
}

#[test]
fn an_unanswered_request_times_out_after_exactly_the_request_timeout() -> turmoil::Result {
    let mut sim = sim(2);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let config = ClientConfig {
            request_timeout_ms: 250,
            ..ClientConfig::default()
        };
        let client = sim_client(config, 2);
        assert_eq!(client.call(redrive("echo", 1)).await, redriven(1));

        let start = Instant::now();
        let outcome = client.call(redrive("silent", 0)).await;
        assert_eq!(outcome, Outcome::Info(Indeterminate::Timeout));
        assert_eq!(start.elapsed(), ms(250));

        // An answer that comes after the timeout is dropped, and neither it nor the timeout
        // disturbs the connection or the matching of later answers.
        let start = Instant::now();
        let outcome = client.call(redrive("slow", 400)).await;
        assert_eq!(outcome, Outcome::Info(Indeterminate::Timeout));
        assert_eq!(start.elapsed(), ms(250));
        tokio::time::sleep(ms(400)).await;
        assert_eq!(client.call(redrive("echo", 7)).await, redriven(7));

        let expected = ClientStats {
            connects: 1,
            timeouts: 2,
            requests: 4,
            ..ClientStats::default()
        };
        assert_eq!(client.stats(), expected);
        Ok(())
    });
    sim.run()?;
    assert!(
        log.borrow().answered.contains(&3),
        "the late answer to request 3 was sent"
    );
    Ok(())
}

#[test]
fn a_host_crash_loses_pending_requests_and_a_dead_host_times_out_the_connect() -> turmoil::Result {
    let mut sim = sim(3);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let config = ClientConfig {
            request_timeout_ms: 5000,
            connect_timeout_ms: 300,
            ..ClientConfig::default()
        };
        let client = sim_client(config, 3);
        assert_eq!(client.call(redrive("echo", 1)).await, redriven(1));
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let client = client.clone();
                tokio::task::spawn_local(async move { client.call(redrive("silent", 0)).await })
            })
            .collect();
        let start = Instant::now();
        for call in calls {
            let outcome = call.await?;
            assert!(is_lost(&outcome), "{outcome:?}");
        }
        assert!(start.elapsed() < ms(5000), "lost long before the timeout");

        // The crashed host drops every packet, so the next attempt ends by the connect timeout,
        // and the request was never sent.
        let start = Instant::now();
        let outcome = client.call(redrive("echo", 2)).await;
        assert!(
            unavailable_reason(&outcome).contains("timed out"),
            "{outcome:?}"
        );
        assert_eq!(start.elapsed(), ms(300));

        let expected = ClientStats {
            connects: 1,
            connect_failures: 1,
            connections_lost: 1,
            requests: 4,
            ..ClientStats::default()
        };
        assert_eq!(client.stats(), expected);
        Ok(())
    });
    let mut crashed = false;
    while !sim.step()? {
        // Crash once the three pipelined requests have arrived.
        if !crashed && log.borrow().batches.len() == 2 {
            sim.crash("broker");
            crashed = true;
        }
    }
    assert!(crashed);
    assert_eq!(log.borrow().batches[1].len(), 3);
    Ok(())
}

#[test]
fn a_dropped_connection_loses_pending_requests_and_the_next_call_reconnects_at_once()
-> turmoil::Result {
    let mut sim = sim(4);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let client = sim_client(ClientConfig::default(), 4);
        assert_eq!(client.call(redrive("echo", 1)).await, redriven(1));
        let calls: Vec<_> = ["silent", "silent", "hang-up"]
            .into_iter()
            .map(|destination| {
                let client = client.clone();
                tokio::task::spawn_local(async move { client.call(redrive(destination, 0)).await })
            })
            .collect();
        for call in calls {
            let outcome = call.await?;
            assert!(is_lost(&outcome), "{outcome:?}");
        }
        // Losing an established connection is not a failed attempt: no backoff applies.
        assert_eq!(client.call(redrive("echo", 2)).await, redriven(2));
        let expected = ClientStats {
            connects: 2,
            connections_lost: 1,
            requests: 5,
            ..ClientStats::default()
        };
        assert_eq!(client.stats(), expected);
        Ok(())
    });
    sim.run()?;
    assert_eq!(log.borrow().hellos.len(), 2);
    Ok(())
}

#[test]
fn a_refused_handshake_is_unavailable_and_the_next_call_fails_fast_in_backoff() -> turmoil::Result {
    let mut sim = sim(5);
    let server = Server {
        welcome: false,
        ..Server::scripted()
    };
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let client = sim_client(ClientConfig::default(), 5);
        let outcome = client.call(redrive("echo", 1)).await;
        assert!(
            unavailable_reason(&outcome).contains("no entry"),
            "{outcome:?}"
        );
        let start = Instant::now();
        let outcome = client.call(redrive("echo", 1)).await;
        assert!(
            unavailable_reason(&outcome).contains("no entry"),
            "the refusal says why: {outcome:?}"
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "no waiting in backoff");
        let expected = ClientStats {
            connect_failures: 1,
            ..ClientStats::default()
        };
        assert_eq!(client.stats(), expected);
        Ok(())
    });
    sim.run()?;
    assert_eq!(log.borrow().hellos.len(), 1, "one attempt, not two");
    Ok(())
}

#[test]
fn max_in_flight_makes_further_calls_wait_for_a_slot() -> turmoil::Result {
    let mut sim = sim(6);
    let server = Server::scripted();
    let log = server.log.clone();
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let config = ClientConfig {
            max_in_flight: 2,
            ..ClientConfig::default()
        };
        let client = sim_client(config, 6);
        assert_eq!(client.call(redrive("echo", 1)).await, redriven(1));
        let start = Instant::now();
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                tokio::task::spawn_local(async move {
                    let outcome = client.call(redrive("slow", 100)).await;
                    (outcome, Instant::now())
                })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            let (outcome, done) = call.await?;
            assert_eq!(outcome, redriven(100));
            let waves = if n < 2 { 1 } else { 2 };
            assert!(
                done - start >= ms(100) * waves,
                "call {n} at {:?}",
                done - start
            );
        }
        Ok(())
    });
    sim.run()?;
    assert_eq!(
        log.borrow().batches,
        [vec![1], vec![2, 3], vec![4, 5]],
        "two at a time"
    );
    Ok(())
}

#[test]
fn driver_operations_work_end_to_end_against_a_real_broker() -> turmoil::Result {
    let mut sim = sim(7);
    let config = BrokerConfig::new(Durability::Always, vec![DestinationConfig::queue("q")]);
    let broker = Rc::new(RefCell::new(
        Broker::open(config, MemDisk::new(), Time(0)).unwrap(),
    ));
    let server = Server {
        respond: Rc::new(move |command| {
            Action::Answer(broker.borrow_mut().apply(SimClock.now(), command))
        }),
        ..Server::scripted()
    };
    add_broker(&mut sim, server, Rc::new(Cell::new(true)));
    sim.client("producer", async {
        let client = sim_client(ClientConfig::default(), 7);
        let confirm = client
            .publish("q", PublishRequest::new("hello"))
            .await
            .ok()
            .unwrap();
        let deliveries = client
            .receive("q", None, ConsumerId(1), 10, None, AckMode::Explicit)
            .await
            .ok()
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].message_id, confirm.message_id);
        assert_eq!(&deliveries[0].payload[..], b"hello");
        let receipt = deliveries[0].receipt.unwrap();
        assert_eq!(client.ack(receipt).await, Outcome::Ok(()));
        assert_eq!(
            client.ack(receipt).await,
            Outcome::Fail(Failure::Broker(BrokerError::StaleReceipt))
        );
        assert_eq!(
            client.publish("nope", PublishRequest::new("x")).await,
            Outcome::Fail(Failure::Broker(BrokerError::UnknownDestination(
                "nope".into()
            )))
        );
        Ok(())
    });
    sim.run()
}

/// One connection attempt, as the polling client saw it.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    start: Duration,
    end: Duration,
    connected: bool,
}

/// The broker host stops listening until `UP_AT`, listens until `DOWN_AT`, then stops again.
const UP_AT: Duration = Duration::from_secs(3);
const DOWN_AT: Duration = Duration::from_secs(4);
const END_AT: Duration = Duration::from_secs(6);

/// Runs a client that calls every millisecond against a broker that is down, up, then down
/// again, and returns every connection attempt it made. Every call that made no attempt is
/// checked to have succeeded on a live connection or failed at once with `Unavailable`.
fn flapping_broker(client_seed: u64) -> turmoil::Result<Vec<Attempt>> {
    let mut sim = sim(8);
    let listening = Rc::new(Cell::new(false));
    add_broker(&mut sim, Server::scripted(), listening.clone());
    let attempts = Rc::new(RefCell::new(Vec::new()));
    let record = attempts.clone();
    sim.client("producer", async move {
        let client = sim_client(ClientConfig::default(), client_seed);
        while now() < END_AT {
            let before = client.stats();
            let start = now();
            let outcome = client.call(redrive("echo", 1)).await;
            let after = client.stats();
            let end = now();
            if after.connects + after.connect_failures > before.connects + before.connect_failures {
                let connected = after.connects > before.connects;
                assert_eq!(connected, outcome == redriven(1), "{outcome:?}");
                record.borrow_mut().push(Attempt {
                    start,
                    end,
                    connected,
                });
            } else if outcome != redriven(1) && !is_lost(&outcome) {
                unavailable_reason(&outcome);
                assert_eq!(start, end, "refused at once inside the backoff window");
            }
            tokio::time::sleep(ms(1)).await;
        }
        Ok(())
    });
    let (mut up, mut down) = (false, false);
    while !sim.step()? {
        if !up && sim.elapsed() >= UP_AT {
            listening.set(true);
            sim.bounce("broker");
            up = true;
        }
        if !down && sim.elapsed() >= DOWN_AT {
            listening.set(false);
            sim.bounce("broker");
            down = true;
        }
    }
    Ok(attempts.take())
}

#[test]
fn reconnects_back_off_exponentially_with_jitter_and_reset_after_a_handshake() -> turmoil::Result {
    let attempts = flapping_broker(11)?;
    let ceilings = [10, 20, 40, 80, 160, 320, 640, 1000];
    let mut failures = 0usize;
    let mut reached_cap = false;
    for pair in attempts.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        if previous.connected {
            failures = 0;
            // After a success the connection is only replaced once it is lost, at DOWN_AT.
            assert!(next.start >= DOWN_AT, "{next:?}");
            continue;
        }
        failures += 1;
        let ceiling = ms(ceilings[(failures - 1).min(ceilings.len() - 1)]);
        reached_cap |= failures >= ceilings.len();
        let gap = next.start - previous.end;
        // The client polls every millisecond, so it sees the window end within one.
        assert!(
            gap >= ceiling / 2 && gap <= ceiling + ms(1),
            "attempt after failure {failures}: gap {gap:?} outside [{:?}, {:?}]; {attempts:#?}",
            ceiling / 2,
            ceiling + ms(1)
        );
    }
    assert!(reached_cap, "the backoff reached its cap: {attempts:#?}");

    let successes: Vec<&Attempt> = attempts.iter().filter(|a| a.connected).collect();
    assert_eq!(successes.len(), 1, "{attempts:#?}");
    assert!(
        successes[0].start >= UP_AT,
        "connected only once the broker is back"
    );
    assert!(
        successes[0].start <= UP_AT + ms(1001),
        "and within one capped backoff"
    );
    // The first failure after the reconnect starts the ladder again from the initial backoff.
    let after_down: Vec<&Attempt> = attempts.iter().filter(|a| a.start >= DOWN_AT).collect();
    assert!(after_down.len() >= 3, "{attempts:#?}");
    assert!(after_down[1].start - after_down[0].end <= ms(11));
    Ok(())
}

#[test]
fn the_client_seed_alone_fixes_the_attempt_times() -> turmoil::Result {
    let first = flapping_broker(21)?;
    assert_eq!(first, flapping_broker(21)?, "same seed, same attempts");
    let other = flapping_broker(22)?;
    let times = |attempts: &[Attempt]| attempts.iter().map(|a| a.start).collect::<Vec<_>>();
    assert_ne!(times(&first), times(&other), "another seed, other jitter");
    Ok(())
}

#[test]
fn real_sockets_pipeline_time_out_and_refuse() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = Server::scripted();
        let log = server.log.clone();
        tokio::task::spawn_local(serve(listener, server));

        let config = ClientConfig {
            name: "real".into(),
            request_timeout_ms: 500,
            ..ClientConfig::default()
        };
        let client = Client::new(
            TokioConnector,
            addr,
            config.clone(),
            ChaCha8Rng::seed_from_u64(1),
        );
        let calls: Vec<_> = (0..20)
            .map(|n| {
                let client = client.clone();
                tokio::task::spawn_local(async move { client.call(redrive("echo", n)).await })
            })
            .collect();
        for (n, call) in (0..).zip(calls) {
            assert_eq!(call.await.unwrap(), redriven(n));
        }
        let outcome = client.call(redrive("silent", 0)).await;
        assert_eq!(outcome, Outcome::Info(Indeterminate::Timeout));
        assert_eq!(client.call(redrive("echo", 99)).await, redriven(99));
        assert_eq!(log.borrow().hellos, ["real"]);
        let stats = client.stats();
        assert_eq!((stats.connects, stats.timeouts, stats.requests), (1, 1, 22));

        // A port nobody listens on: refused, then refused at once inside the backoff window.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        // A long backoff, so that the second call lands in the window however slow the machine.
        let config = ClientConfig {
            reconnect_initial_backoff_ms: 60_000,
            reconnect_max_backoff_ms: 60_000,
            ..config
        };
        let client = Client::new(TokioConnector, addr, config, ChaCha8Rng::seed_from_u64(1));
        let outcome = client.call(redrive("echo", 1)).await;
        assert!(
            unavailable_reason(&outcome).contains("connecting"),
            "{outcome:?}"
        );
        let outcome = client.call(redrive("echo", 1)).await;
        assert!(
            unavailable_reason(&outcome).contains("reconnecting in"),
            "{outcome:?}"
        );
        assert_eq!(client.stats().connect_failures, 1);
    });
}
