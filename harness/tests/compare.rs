//! `mqsim compare` on the consumer-crash scenario: the three delivery modes under the same
//! crashes show what each promises, and profiles change what the broker does.

use std::path::Path;

use mqsim_harness::Exit;
use mqsim_harness::compare::{self, Delivery, Options};
use mqsim_harness::scenario::ScenarioFile;

fn consumer_crash() -> ScenarioFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/consumer-crash.yaml");
    ScenarioFile::load(&path).expect("the catalogue scenario loads")
}

fn run(options: &Options) -> (Exit, serde_json::Value, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let exit = compare::compare(&consumer_crash(), options, &mut out, &mut err).unwrap();
    let dir = options.out.as_ref().unwrap();
    let json = std::fs::read_to_string(dir.join("compare.json")).unwrap_or_default();
    let html = std::fs::read_to_string(dir.join("compare.html")).unwrap_or_default();
    (
        exit,
        serde_json::from_str(&json).unwrap_or_default(),
        String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap(),
        html,
    )
}

#[test]
fn delivery_modes_side_by_side_show_loss_duplicates_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        deliveries: Delivery::ALL.to_vec(),
        profiles: Vec::new(),
        seeds: 2,
        jobs: 2,
        out: Some(dir.path().to_path_buf()),
    };
    let (exit, json, text, html) = run(&options);
    assert_eq!(exit, Exit::Pass, "{text}");
    let v = json["variants"].as_array().unwrap();
    let names: Vec<&str> = v.iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(names, ["at-most-once", "at-least-once", "exactly-once"]);
    let n = |i: usize, key: &str| v[i][key].as_u64().unwrap();
    for i in 0..3 {
        assert_eq!(n(i, "runs"), 2);
        assert_eq!(n(i, "failed_runs"), 0, "{text}");
    }
    // At-most-once loses what crashed consumers held and never delivers twice.
    assert!(n(0, "lost") > 0, "{text}");
    assert_eq!(n(0, "duplicate_deliveries"), 0, "{text}");
    // At-least-once loses nothing and repeats effects.
    assert_eq!(n(1, "lost"), 0, "{text}");
    assert!(n(1, "duplicate_effects") > 0, "{text}");
    // Exactly-once: nothing lost, no effect twice, though deliveries repeat.
    assert_eq!(n(2, "lost"), 0, "{text}");
    assert_eq!(n(2, "duplicate_effects"), 0, "{text}");
    assert!(n(2, "duplicate_deliveries") > 0, "{text}");
    // The guarantee costs broker work: acks are requests at-most-once does not send.
    let cost = |i: usize| v[i]["requests_per_completed"].as_f64().unwrap();
    assert!(cost(0) < cost(1), "{text}");
    // One table row per variant, and the page has the curves and charts.
    assert_eq!(
        text.lines().filter(|l| l.contains("-once ")).count(),
        3,
        "{text}"
    );
    assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
    assert_eq!(html.matches("<svg ").count(), 1 + 3 * 3);

    // The same comparison on one job gives the same figures.
    let again_dir = tempfile::tempdir().unwrap();
    let (_, again, _, _) = run(&Options {
        jobs: 1,
        out: Some(again_dir.path().to_path_buf()),
        ..options
    });
    assert_eq!(again["variants"], json["variants"]);
}

#[test]
fn profiles_change_what_the_broker_does_under_the_same_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        deliveries: vec![Delivery::AtLeastOnce],
        profiles: vec!["google-pubsub".to_owned(), "kafka".to_owned()],
        seeds: 1,
        jobs: 2,
        out: Some(dir.path().to_path_buf()),
    };
    let (exit, json, text, _) = run(&options);
    let v = json["variants"].as_array().unwrap();
    assert_eq!(v[0]["variant"], "google-pubsub at-least-once");
    // A crashed consumer's message waits out the lease: 10 s on Pub/Sub, 45 s on Kafka
    // (its session timeout), which is longer than the scenario's 30 s drain.
    let max = |i: usize| v[i]["e2e_latency_ms"]["max"].as_f64().unwrap();
    assert!(max(0) > 10_000.0 && max(0) < 12_000.0, "{text}");
    assert_eq!(v[0]["undrained_runs"], 0, "{text}");
    assert_eq!(v[1]["undrained_runs"], 1, "{text}");
    assert_eq!(exit, Exit::Liveness, "{text}");
}

#[test]
fn an_unknown_profile_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (exit, _, text, _) = run(&Options {
        deliveries: Vec::new(),
        profiles: vec!["rabbit".to_owned()],
        seeds: 1,
        jobs: 1,
        out: Some(dir.path().to_path_buf()),
    });
    assert_eq!(exit, Exit::BadInput);
    assert!(
        text.contains("no profile `rabbit`") && text.contains("rabbitmq-quorum"),
        "{text}"
    );
}
