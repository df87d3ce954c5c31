//! The simulated cluster end to end: the same seed gives the same history, a broker crash loses
//! nothing confirmed under `always` durability and loses messages under `none`, indeterminate
//! publishes are reported as such, and a drain that cannot finish is a liveness failure.
//!
//! Each run is a few simulated seconds over turmoil's network with the real server and client.

use std::collections::BTreeSet;

mod clusters;
use clusters::{broker, cluster, every_fault, fault};

use mqsim_broker::{AckMode, Durability};
use mqsim_harness::sim::history::{Completion, Op, What};
use mqsim_harness::sim::spec::CrashSpec;
use mqsim_harness::sim::{ClusterSpec, Drain, Fault, ProducerSpec, RunReport, Transport, run};

fn go(spec: ClusterSpec) -> RunReport {
    match run(spec, None) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    }
}

/// Every publish invoke has exactly one completion, and every indeterminate message has an
/// `info` completion among its attempts.
fn check_publish_completions(r: &RunReport) {
    let entries = r.history.entries();
    let mut open = BTreeSet::new();
    let mut info = BTreeSet::new();
    let mut ok = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        match e.what {
            What::Invoke {
                op: Op::Publish, ..
            } => {
                open.insert(i as u32);
            }
            What::Ok {
                op: Op::Publish,
                invoke,
                msg,
                ..
            } => {
                assert!(open.remove(&invoke), "second completion of {invoke}");
                ok.insert(msg);
            }
            What::Failed {
                op: Op::Publish,
                invoke,
                msg,
                completion,
                ..
            } => {
                assert!(open.remove(&invoke), "second completion of {invoke}");
                if completion == Completion::Info {
                    info.insert(msg);
                }
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "publishes without a completion: {open:?}");
    let indeterminate = info.difference(&ok).count() as u64;
    assert_eq!(indeterminate, r.summary.indeterminate);
}

#[test]
fn no_confirmed_message_is_lost_with_always_durability() {
    let r = go(cluster(7, Durability::Always));
    let s = &r.summary;
    assert!(r.drained(), "{:?}", r.drain);
    assert!(s.confirmed > 400, "{s:?}");
    assert_eq!(s.lost, 0, "lost: {:?}", s.lost_ids);
    assert_eq!(s.unexpected, 0);
    assert!(
        s.dead_lettered > 0,
        "poison messages are dead-lettered: {s:?}"
    );
    assert!(
        s.indeterminate_attempts > 0,
        "the partition leaves publishes in doubt: {s:?}"
    );
    check_publish_completions(&r);
    let faults: Vec<&str> = r
        .history
        .entries()
        .iter()
        .filter_map(|e| match e.what {
            What::Nemesis { text } => Some(r.history.string(text)),
            _ => None,
        })
        .collect();
    for expected in [
        "crash broker",
        "restart broker",
        "partition producer-0 | broker",
    ] {
        assert!(faults.contains(&expected), "{faults:?}");
    }
}

#[test]
fn every_kind_of_fault_heals_without_loss() {
    let r = go(every_fault(17));
    let s = &r.summary;
    assert!(r.drained(), "{:?}", r.drain);
    assert_eq!(s.lost, 0, "{s:?}");
    assert_eq!(s.unexpected, 0, "{s:?}");
    check_publish_completions(&r);
    let crashed = r.history.entries().iter().any(|e| {
        matches!(
            e.what,
            What::Failed { completion: Completion::Info, error, .. }
                if r.history.string(error) == "process crashed"
        )
    });
    assert!(crashed, "the crashed producer had publishes in flight");
}

#[test]
fn the_same_crash_loses_messages_with_no_durability() {
    let r = go(cluster(7, Durability::None));
    assert!(r.drained(), "{:?}", r.drain);
    assert!(r.summary.lost > 0, "{:?}", r.summary);
    check_publish_completions(&r);
}

#[test]
fn lost_replies_are_indeterminate_publishes_and_recovered_when_delivered() {
    let mut spec = cluster(11, Durability::Always);
    spec.producers[0].retry.max_attempts = 1;
    // Requests reach the broker but its replies to producer-0 are lost.
    spec.faults = vec![fault(
        500,
        300,
        Fault::Partition {
            a: vec!["broker".into()],
            b: vec!["producer-0".into()],
            one_way: true,
        },
    )];
    let r = go(spec);
    let s = &r.summary;
    assert!(r.drained(), "{:?}", r.drain);
    assert!(s.indeterminate > 0, "{s:?}");
    assert!(s.recovered > 0, "stored despite the lost reply: {s:?}");
    assert_eq!(s.lost, 0, "{s:?}");
    check_publish_completions(&r);
}

#[test]
fn idempotent_sinks_apply_each_message_once_despite_redeliveries() {
    let mut spec = cluster(5, Durability::Always);
    for c in &mut spec.consumers {
        c.idempotent_sink = true;
        c.crash = CrashSpec {
            after_effect_probability: 0.02,
            restart_after_ms: 50,
            ..CrashSpec::default()
        };
    }
    let r = go(spec);
    let s = &r.summary;
    assert!(r.drained(), "{:?}", r.drain);
    assert_eq!(s.lost, 0, "{s:?}");
    assert!(s.duplicates > 0, "crashes before the ack redeliver: {s:?}");
    assert_eq!(s.duplicate_effects, 0, "{s:?}");
}

#[test]
fn a_group_nobody_consumes_is_a_liveness_failure() {
    let mut spec = cluster(3, Durability::Always);
    spec.broker = broker(Durability::Always, &["billing", "shipping", "audit"]);
    spec.drain_timeout_ms = 500;
    let r = go(spec);
    match &r.drain {
        Drain::TimedOut { pending } => {
            assert!(
                pending.iter().any(|p| p.starts_with("orders/audit:")),
                "{pending:?}"
            );
        }
        other => panic!("the drain should time out: {other:?}"),
    }
}

#[test]
fn runs_are_identical_for_a_seed_and_differ_across_seeds() {
    let mut hashes = BTreeSet::new();
    for seed in 1..=5 {
        let spec = || {
            let mut s = cluster(seed, Durability::Always);
            s.duration_ms = 1000;
            s.faults.retain(|f| f.at_ms < 1000);
            s.consumers[0].crash.after_effect_probability = 0.01;
            s
        };
        let (a, b) = (go(spec()), go(spec()));
        assert_eq!(a.hash, b.hash, "seed {seed}");
        assert_eq!(a.summary, b.summary, "seed {seed}");
        hashes.insert(a.hash);
        let (a, b) = (go(every_fault(seed)), go(every_fault(seed)));
        assert_eq!(a.hash, b.hash, "seed {seed}, every fault");
        hashes.insert(a.hash);
    }
    assert_eq!(hashes.len(), 10, "different seeds gave the same history");
}

#[test]
fn the_local_transport_runs_the_same_schedule() {
    let mut spec = cluster(9, Durability::Always);
    spec.transport = Transport::Local;
    let r = go(spec);
    assert!(r.drained(), "{:?}", r.drain);
    assert_eq!(r.summary.lost, 0, "{:?}", r.summary);
    check_publish_completions(&r);
}

#[test]
fn auto_acks_lose_what_fails_and_never_redeliver() {
    let mut spec = cluster(13, Durability::Always);
    for c in &mut spec.consumers {
        c.ack_mode = AckMode::Auto;
    }
    let r = go(spec);
    let s = &r.summary;
    assert!(r.drained(), "{:?}", r.drain);
    // Poison and failed messages are gone under at-most-once.
    assert!(s.lost > 0, "{s:?}");
    assert_eq!(s.dead_lettered, 0, "{s:?}");
}

#[test]
fn producers_stop_after_their_count_or_their_duration() {
    let mut spec = cluster(4, Durability::Always);
    spec.transport = Transport::Local;
    spec.faults.clear();
    spec.producers = vec![
        ProducerSpec {
            destination: "orders".into(),
            messages_per_s: 100.0,
            messages: Some(50),
            ..ProducerSpec::default()
        },
        ProducerSpec {
            destination: "orders".into(),
            messages_per_s: 100.0,
            start_ms: 100,
            duration_ms: Some(300),
            ..ProducerSpec::default()
        },
    ];
    let r = go(spec);
    assert!(r.drained(), "{:?}", r.drain);
    // 50, and one every 10 ms from 100 ms until before 400 ms.
    assert_eq!(r.summary.published, 50 + 30, "{:?}", r.summary);
    assert_eq!(r.summary.lost, 0);
}

#[test]
fn invalid_specs_name_the_field() {
    let mut spec = cluster(1, Durability::Always);
    spec.producers[0].payload_bytes = 3;
    let err = run(spec, None).unwrap_err().to_string();
    assert!(err.contains("producers[0].payload_bytes"), "{err}");
    let mut spec = cluster(1, Durability::Always);
    spec.faults[0].fault = Fault::Crash {
        hosts: vec!["nobody".into()],
    };
    let err = run(spec, None).unwrap_err().to_string();
    assert!(err.contains("faults[0]") && err.contains("nobody"), "{err}");
    let mut spec = cluster(1, Durability::Always);
    spec.consumers[0].group = Some("nope".into());
    let err = run(spec, None).unwrap_err().to_string();
    assert!(err.contains("consumers[0].group"), "{err}");
}

#[test]
fn the_history_file_hashes_to_the_run_hash() {
    let dir = std::env::temp_dir().join(format!("mqsim-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let mut spec = cluster(2, Durability::Always);
    spec.duration_ms = 500;
    spec.faults.clear();
    let r = run(spec, Some(&path)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, r.hash);
    assert_eq!(bytes.len() as u64, r.history_bytes);
    let first = std::str::from_utf8(&bytes).unwrap().lines().next().unwrap();
    assert_eq!(
        first,
        r#"{"time_ns":0,"process":"harness","type":"phase","phase":"fault"}"#
    );
    eprintln!(
        "{}: {} entries, {} bytes of JSON, {} bytes in memory ({} per entry)",
        r.hash,
        r.history.entries().len(),
        r.history_bytes,
        r.history.memory_bytes(),
        std::mem::size_of::<mqsim_harness::sim::history::Entry>()
    );
}

#[test]
fn the_hand_written_history_lines_are_what_serde_json_writes() {
    // The whole schedule: a crash, a partition and a slow consumer give every kind of line.
    let spec = cluster(3, Durability::Always);
    let r = run(spec.clone(), None).unwrap();
    // The run's summary is counted by the history writer as the entries stream past it.
    assert_eq!(
        r.summary,
        mqsim_harness::sim::Summary::of(&r.history, &r.plan, &spec)
    );
    let mut fast = Vec::new();
    let mut reference = Vec::new();
    let a = r.history.write_jsonl(&r.plan, &mut fast).unwrap();
    let b =
        mqsim_harness::sim::jsonl::write_via_serde(&r.history, &r.plan, &mut reference).unwrap();
    assert_eq!(
        String::from_utf8(fast).unwrap(),
        String::from_utf8(reference).unwrap()
    );
    assert_eq!(a, b);
    assert_eq!(mqsim_harness::sim::jsonl::hex(&a.0), r.hash);
}
