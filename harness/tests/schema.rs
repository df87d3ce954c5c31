//! `scenarios/schema.json` must be what the scenario types generate, so that editors check
//! files against the format the loader actually reads.

use std::fs;
use std::path::Path;

use mqsim_harness::scenario::schema::schema_json;

/// Set to rewrite the committed schema instead of comparing with it.
const BLESS: &str = "MQSIM_BLESS";

#[test]
fn committed_schema_matches_the_scenario_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/schema.json");
    let generated = schema_json();
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        fs::write(&path, &generated).expect("scenarios/schema.json should be writable");
        return;
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    // Comparing whole texts keeps the failure short; a diff tool shows the details.
    assert!(
        committed == generated,
        "{} is out of date with the scenario types; regenerate it with \
         `{BLESS}=1 cargo test -p mqsim-harness --test schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_names_every_top_level_key() {
    let schema: serde_json::Value =
        serde_json::from_str(&schema_json()).expect("the schema is JSON");
    let keys: Vec<&str> = schema["properties"]
        .as_object()
        .expect("the top level has properties")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "name",
        "description",
        "seed",
        "duration",
        "tick",
        "transport",
        "network",
        "broker",
        "server",
        "client",
        "producers",
        "consumers",
        "faults",
        "drain",
        "expect",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(
        schema["required"],
        serde_json::json!(["name", "description", "duration", "broker"])
    );
}
