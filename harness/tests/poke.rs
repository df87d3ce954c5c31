//! `mqsim broker` and `mqsim client` as processes over loopback.

mod common;

use common::{mqsim, scratch_dir};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `mqsim broker`, killed when the test ends however it ends.
struct Broker {
    child: Child,
    addr: String,
}

impl Broker {
    /// Starts a broker on a free loopback port and waits (at most 30 s) for its address.
    fn start(config: Option<&Path>) -> Broker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mqsim"));
        command.args(["broker", "--listen", "127.0.0.1:0"]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the mqsim binary should start");
        let stdout = child.stdout.take().expect("stdout is piped");
        // The first line is read on a thread so that a broker that never prints cannot hang
        // the test past the timeout.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut broker = Broker {
            child,
            addr: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the broker should print its address within 30 s");
        broker.addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        broker
    }

    fn client(&self, args: &[&str]) -> common::Outcome {
        let mut all = vec!["client", "--connect", &self.addr];
        all.extend_from_slice(args);
        mqsim(all)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn publish_and_receive_through_a_real_broker() {
    let broker = Broker::start(None);
    let published = broker.client(&["publish", "q", "hello world", "--key", "k"]);
    assert_eq!(published.code, Some(0), "stderr: {}", published.stderr);
    assert!(
        published
            .stdout
            .starts_with("published message 1099511627776 to partition 0 at offset 0"),
        "{}",
        published.stdout
    );

    // Received without an ack, the message stays leased for its 30 s visibility timeout, so
    // another consumer finds nothing.
    let leased = broker.client(&["receive", "q", "--no-ack"]);
    assert_eq!(leased.code, Some(0), "stderr: {}", leased.stderr);
    assert_eq!(
        leased.stdout,
        "message 1099511627776 partition 0 offset 0 delivery 1 key k payload \"hello world\"\n"
    );
    let empty = broker.client(&["receive", "q", "--consumer", "2"]);
    assert_eq!(empty.code, Some(0), "stderr: {}", empty.stderr);
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "mqsim: no messages\n");

    // The topic's group gets its message and acks it; a second receive finds nothing.
    assert_eq!(broker.client(&["publish", "t", "news"]).code, Some(0));
    let got = broker.client(&["receive", "t", "--group", "g"]);
    assert_eq!(got.code, Some(0), "stderr: {}", got.stderr);
    assert!(got.stdout.ends_with("payload \"news\"\n"), "{}", got.stdout);
    assert_eq!(broker.client(&["receive", "t", "--group", "g"]).stdout, "");

    // A refusal is reported with the broker's reason and exit code 2.
    let refused = broker.client(&["receive", "t"]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("name a consumer group"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_config_file_sets_the_destinations() {
    let dir = scratch_dir("poke-config");
    let path = dir.join("broker.yaml");
    std::fs::write(
        &path,
        "durability: {policy: none}\ndestinations:\n  - name: jobs\n    partitions: 2\n",
    )
    .unwrap();
    let broker = Broker::start(Some(&path));
    assert_eq!(broker.client(&["publish", "jobs", "x"]).code, Some(0));
    let missing = broker.client(&["publish", "q", "x"]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("unknown destination `q`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn bad_config_files_are_located_and_exit_2() {
    let dir = scratch_dir("poke-bad-config");
    for (name, text, expected) in [
        (
            "typo.yaml",
            "destinations:\n  - name: q\n    partitons: 2\n",
            ":3:5: destinations[0]: unknown key `partitons`; did you mean `partitions`?",
        ),
        (
            "range.yaml",
            "destinations:\n  - name: q\n    partitions: 0\n",
            ":1:1: destination `q`: partitions = 0 is out of range (1 to 1024)",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let outcome = mqsim(["broker", "--listen", "127.0.0.1:0", "--config", path]);
        assert_eq!(outcome.code, Some(2), "{name}: {}", outcome.stderr);
        assert_eq!(outcome.stderr, format!("{path}{expected}\n"));
        assert_eq!(outcome.stdout, "");
    }
}

#[test]
fn the_broker_listens_on_loopback_only() {
    let outcome = mqsim(["broker", "--listen", "0.0.0.0:0"]);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains("loopback"), "{}", outcome.stderr);
}

#[test]
fn an_unreachable_broker_is_an_error() {
    // Bind and drop a listener to find a port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let outcome = mqsim(["client", "--connect", &addr, "publish", "q", "x"]);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("cannot connect"),
        "{}",
        outcome.stderr
    );
}
