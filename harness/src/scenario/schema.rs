//! The JSON Schema of the scenario format, generated from the serde types with schemars.
//!
//! `scenarios/schema.json` is this output, committed so that editors can complete and check
//! scenario files; `tests/schema.rs` fails when the two differ.

use schemars::{Schema, json_schema};
use serde::de::{DeserializeOwned, IntoDeserializer, value::StrDeserializer};

use super::ScenarioDoc;

/// The schema of a scenario file, as pretty-printed JSON with a final newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(ScenarioDoc);
    // Serializing a `Schema` (a JSON value) cannot fail; the fallback keeps this panic-free.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema of a string enum of a foreign type, whose variants' serde names are `names`.
///
/// The broker's enums do not derive `JsonSchema` (the broker crate stays free of schema
/// concerns), so their names are listed here; every name is checked to deserialize into `T`
/// whenever the schema is generated in a debug build, which the schema test does.
pub(crate) fn string_enum<T: DeserializeOwned>(names: &[&str], description: &str) -> Schema {
    for &name in names {
        let deserializer: StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
        debug_assert!(
            T::deserialize(deserializer).is_ok(),
            "`{name}` is not a serde name of {}",
            std::any::type_name::<T>()
        );
    }
    json_schema!({
        "type": "string",
        "enum": names,
        "description": description,
    })
}
