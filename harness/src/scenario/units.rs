//! Durations and rates as people write them: `250ms`, `30s`, `2m`, `1h`; `500/s`, `30/m`.
//!
//! A unit is always required. A bare number is refused rather than read as milliseconds,
//! because `timeout: 30` is as likely to mean seconds as milliseconds, and a silent factor of
//! a thousand is the worst kind of scenario bug.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest number a duration or rate may spell: enough for any real value, and short
/// enough that parsing never overflows before the range check.
const MAX_DIGITS: usize = 12;

/// The longest duration that parses (a year); every setting has a lower bound of its own, but
/// this keeps arithmetic on durations far from overflow wherever they are used.
const MAX_DURATION_MS: u64 = 365 * 24 * 3_600_000;

/// The duration units, longest suffix first so that `ms` is not read as `m` followed by junk.
const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];

/// What a duration looks like, for error messages and the schema.
const DURATION_EXPECTED: &str = "a duration with a unit, such as `250ms`, `30s`, `2m` or `1h`";

/// What a rate looks like.
const RATE_EXPECTED: &str = "a rate with a unit, such as `500/s`, `30/m` or `2/h`";

/// A whole number of milliseconds, written with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration {
    ms: u64,
}

impl HumanDuration {
    /// A duration of `ms` milliseconds.
    pub const fn from_ms(ms: u64) -> Self {
        HumanDuration { ms }
    }

    /// The duration in milliseconds.
    pub const fn as_ms(self) -> u64 {
        self.ms
    }

    /// Parses `250ms`, `30s`, `2m` or `1h`: digits, then a unit, nothing else.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("`{text}` is not {DURATION_EXPECTED}"));
        }
        let Some(&(_, factor_ms)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("`{text}` has no unit; expected {DURATION_EXPECTED}")
            } else {
                format!("`{text}` has an unknown unit `{unit}`; expected {DURATION_EXPECTED}")
            });
        };
        let ms = parse_digits(digits)
            .and_then(|n| n.checked_mul(factor_ms))
            .filter(|&ms| ms <= MAX_DURATION_MS)
            .ok_or_else(|| format!("`{text}` is too long a duration (the most is a year)"))?;
        Ok(HumanDuration { ms })
    }
}

/// The milliseconds in the largest unit that divides them exactly, so `30000` reads `30s`.
pub fn format_ms(ms: u64) -> String {
    DURATION_UNITS
        .iter()
        .rev()
        .find(|&&(_, factor)| ms >= factor && ms.is_multiple_of(factor))
        .map_or_else(
            || format!("{ms}ms"),
            |&(unit, factor)| format!("{}{unit}", ms / factor),
        )
}

fn parse_digits(digits: &str) -> Option<u64> {
    if digits.len() > MAX_DIGITS {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_ms(self.ms))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The check runs inside the visitor so that serde_norway attaches the scalar's position to the
/// error (see `scenario::single_line_name`).
impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit; expected {DURATION_EXPECTED} (write `{n}ms` for milliseconds)"
                )))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                Err(E::invalid_type(Unexpected::Signed(n), &self))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<HumanDuration, E> {
                Err(E::invalid_type(Unexpected::Float(n), &self))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,12}(ms|s|m|h)$",
            "description": "A duration with a unit: `250ms`, `30s`, `2m`, `1h`.",
        })
    }
}

/// Messages per second, written with a unit.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct HumanRate {
    per_s: f64,
    /// The text it was read from, so that it prints back as written.
    text: RateText,
}

/// A rate's number and unit as written, e.g. `(30, 'm')`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
struct RateText {
    count: f64,
    unit: char,
}

impl HumanRate {
    /// A rate of `per_s` messages per second.
    pub fn from_per_s(per_s: f64) -> Self {
        HumanRate {
            per_s,
            text: RateText {
                count: per_s,
                unit: 's',
            },
        }
    }

    /// Messages per second.
    pub fn per_s(self) -> f64 {
        self.per_s
    }

    /// Parses `500/s`, `30/m`, `2/h` or `0.5/s`: a decimal number without sign or exponent,
    /// a slash and a unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((number, unit)) = text.split_once('/') else {
            return Err(format!("`{text}` has no unit; expected {RATE_EXPECTED}"));
        };
        let seconds = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown unit `/{unit}`; expected {RATE_EXPECTED}"
                ));
            }
        };
        let count = parse_decimal(number).ok_or_else(|| {
            format!(
                "`{number}` in `{text}` is not a plain decimal number; expected {RATE_EXPECTED}"
            )
        })?;
        let unit = unit.chars().next().unwrap_or('s');
        Ok(HumanRate {
            per_s: count / seconds,
            text: RateText { count, unit },
        })
    }
}

/// A non-negative decimal without sign, exponent, `inf` or `nan`: digits with at most one
/// point, at most [`MAX_DIGITS`] digits before it.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let ok = !whole.is_empty()
        && whole.len() <= MAX_DIGITS
        && fraction.len() <= MAX_DIGITS
        && digits_only(whole)
        && digits_only(fraction)
        && !(text.ends_with('.'));
    if ok { text.parse().ok() } else { None }
}

impl fmt::Display for HumanRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.text.count, self.text.unit)
    }
}

impl Serialize for HumanRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;

        impl Visitor<'_> for RateVisitor {
            type Value = HumanRate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(RATE_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanRate, E> {
                HumanRate::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanRate, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit; expected {RATE_EXPECTED} (write `{n}/s` for per second)"
                )))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanRate, E> {
                Err(E::invalid_type(Unexpected::Signed(n), &self))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<HumanRate, E> {
                Err(E::invalid_type(Unexpected::Float(n), &self))
            }
        }

        deserializer.deserialize_any(RateVisitor)
    }
}

impl JsonSchema for HumanRate {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,12}(\\.[0-9]{1,12})?/(s|m|h)$",
            "description": "Messages per unit of time: `500/s`, `30/m`, `2/h`, `0.5/s`.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{HumanDuration, HumanRate, format_ms, parse_decimal};

    fn ms(text: &str) -> Result<u64, String> {
        HumanDuration::parse(text).map(HumanDuration::as_ms)
    }

    #[test]
    fn durations_read_every_unit() {
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("0s"), Ok(0));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
    }

    #[test]
    fn durations_need_digits_and_a_known_unit() {
        assert!(ms("30").unwrap_err().contains("has no unit"));
        assert!(ms("30 s").unwrap_err().contains("unknown unit ` s`"));
        assert!(ms("2d").unwrap_err().contains("unknown unit `d`"));
        assert!(ms("1.5s").unwrap_err().contains("unknown unit `.5s`"));
        assert!(ms("ms").unwrap_err().contains("is not a duration"));
        assert!(ms("-1s").unwrap_err().contains("is not a duration"));
        assert!(ms("").is_err());
        assert!(ms("999999999999h").unwrap_err().contains("too long"));
        assert!(ms("9999999999999ms").unwrap_err().contains("too long"));
        assert!(ms("8761h").unwrap_err().contains("too long"));
        assert_eq!(ms("8760h"), Ok(365 * 24 * 3_600_000));
    }

    #[test]
    fn durations_print_in_their_largest_exact_unit() {
        assert_eq!(format_ms(0), "0ms");
        assert_eq!(format_ms(250), "250ms");
        assert_eq!(format_ms(30_000), "30s");
        assert_eq!(format_ms(90_000), "90s");
        assert_eq!(format_ms(120_000), "2m");
        assert_eq!(format_ms(43_200_000), "12h");
        assert_eq!(HumanDuration::from_ms(1500).to_string(), "1500ms");
    }

    #[test]
    fn yaml_numbers_are_refused_with_a_hint() {
        let err = serde_norway::from_str::<HumanDuration>("30").unwrap_err();
        assert!(err.to_string().contains("write `30ms`"), "{err}");
        let err = serde_norway::from_str::<HumanRate>("30").unwrap_err();
        assert!(err.to_string().contains("write `30/s`"), "{err}");
        assert!(serde_norway::from_str::<HumanDuration>("-3").is_err());
        assert!(serde_norway::from_str::<HumanRate>("1.5").is_err());
        let read: HumanDuration = serde_norway::from_str("2m").unwrap();
        assert_eq!(read.as_ms(), 120_000);
    }

    #[test]
    fn rates_read_every_unit_and_print_as_written() {
        let rate = |t: &str| HumanRate::parse(t).map(HumanRate::per_s);
        assert_eq!(rate("500/s"), Ok(500.0));
        assert_eq!(rate("30/m"), Ok(0.5));
        assert_eq!(rate("7200/h"), Ok(2.0));
        assert_eq!(rate("0.5/s"), Ok(0.5));
        assert_eq!(rate("0/s"), Ok(0.0));
        assert_eq!(HumanRate::parse("30/m").unwrap().to_string(), "30/m");
        assert_eq!(HumanRate::from_per_s(100.0).to_string(), "100/s");
    }

    #[test]
    fn rates_need_a_plain_number_and_a_known_unit() {
        let err = |t: &str| HumanRate::parse(t).unwrap_err();
        assert!(err("500").contains("has no unit"));
        assert!(err("500/d").contains("unknown unit `/d`"));
        assert!(err("500/sec").contains("unknown unit `/sec`"));
        assert!(err("-5/s").contains("not a plain decimal"));
        assert!(err("1e3/s").contains("not a plain decimal"));
        assert!(err("inf/s").contains("not a plain decimal"));
        assert!(err("NaN/s").contains("not a plain decimal"));
        assert!(err("/s").contains("not a plain decimal"));
        assert!(err("5./s").contains("not a plain decimal"));
    }

    #[test]
    fn decimals_are_bounded() {
        assert_eq!(parse_decimal("12.5"), Some(12.5));
        assert_eq!(parse_decimal("1234567890123"), None);
        assert_eq!(parse_decimal(".5"), None);
        assert_eq!(parse_decimal("1.2.3"), None);
    }
}
