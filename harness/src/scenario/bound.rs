//! Bounds on a count or a metric: `0`, `"> 0"`, `"<= 5"`, `"< 50"`, `">= 1"`, `"1..=5"`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::units::parse_decimal;

/// What a bound looks like, for error messages and the schema.
const BOUND_EXPECTED: &str =
    "a bound such as `0`, `\"> 0\"`, `\"<= 5\"`, `\"< 50\"`, `\">= 1\"` or `\"1..=5\"`";

/// Builds a bound from its number, one per operator.
type MakeBound = fn(f64) -> Bound;

/// A condition on one non-negative number. Values are compared as `f64`, which is exact for
/// counts below 2^53, far beyond any run's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Exactly this value (a bare number, or `== N`).
    Eq(f64),
    /// Below.
    Lt(f64),
    /// At most.
    Le(f64),
    /// Above.
    Gt(f64),
    /// At least.
    Ge(f64),
    /// From the first to the second, both included (`A..=B`).
    Between(f64, f64),
}

impl Bound {
    /// Parses the text form. Spaces around the parts are allowed.
    pub fn parse(text: &str) -> Result<Bound, String> {
        let trimmed = text.trim();
        let number = |s: &str| {
            parse_decimal(s.trim()).ok_or_else(|| format!("`{text}` is not {BOUND_EXPECTED}"))
        };
        if let Some((low, high)) = trimmed.split_once("..=") {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(format!("`{text}` is an empty range: {low} is above {high}"));
            }
            return Ok(Bound::Between(low, high));
        }
        // Two-character operators first, so that `<=` is not read as `<` then `=5`.
        let operators: [(&str, MakeBound); 6] = [
            ("<=", Bound::Le),
            (">=", Bound::Ge),
            ("==", Bound::Eq),
            ("<", Bound::Lt),
            (">", Bound::Gt),
            ("=", Bound::Eq),
        ];
        for (operator, make) in operators {
            if let Some(rest) = trimmed.strip_prefix(operator) {
                return Ok(make(number(rest)?));
            }
        }
        Ok(Bound::Eq(number(trimmed)?))
    }

    /// Whether `value` satisfies the bound.
    pub fn holds(&self, value: f64) -> bool {
        match *self {
            Bound::Eq(n) => value == n,
            Bound::Lt(n) => value < n,
            Bound::Le(n) => value <= n,
            Bound::Gt(n) => value > n,
            Bound::Ge(n) => value >= n,
            Bound::Between(low, high) => (low..=high).contains(&value),
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Eq(n) => write!(f, "{n}"),
            Bound::Lt(n) => write!(f, "< {n}"),
            Bound::Le(n) => write!(f, "<= {n}"),
            Bound::Gt(n) => write!(f, "> {n}"),
            Bound::Ge(n) => write!(f, ">= {n}"),
            Bound::Between(low, high) => write!(f, "{low}..={high}"),
        }
    }
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundVisitor;

        impl Visitor<'_> for BoundVisitor {
            type Value = Bound;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(BOUND_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Bound, E> {
                Bound::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bound, E> {
                Ok(Bound::Eq(n as f64))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Bound, E> {
                if n.is_finite() && n >= 0.0 {
                    Ok(Bound::Eq(n))
                } else {
                    Err(E::invalid_value(Unexpected::Float(n), &self))
                }
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Bound, E> {
                Err(E::invalid_value(Unexpected::Signed(n), &self))
            }
        }

        deserializer.deserialize_any(BoundVisitor)
    }
}

impl JsonSchema for Bound {
    fn schema_name() -> Cow<'static, str> {
        "Bound".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A bound: a number (exactly), `< N`, `<= N`, `> N`, `>= N`, `== N` or `A..=B`.",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {
                    "type": "string",
                    "pattern": "^\\s*((<=|>=|==|<|>|=)?\\s*[0-9.]+|[0-9.]+\\s*\\.\\.=\\s*[0-9.]+)\\s*$",
                },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Bound;

    #[test]
    fn every_form_parses() {
        assert_eq!(Bound::parse("0"), Ok(Bound::Eq(0.0)));
        assert_eq!(Bound::parse("== 3"), Ok(Bound::Eq(3.0)));
        assert_eq!(Bound::parse("=3"), Ok(Bound::Eq(3.0)));
        assert_eq!(Bound::parse(">0"), Ok(Bound::Gt(0.0)));
        assert_eq!(Bound::parse(" <= 5 "), Ok(Bound::Le(5.0)));
        assert_eq!(Bound::parse("< 49.5"), Ok(Bound::Lt(49.5)));
        assert_eq!(Bound::parse(">= 1"), Ok(Bound::Ge(1.0)));
        assert_eq!(Bound::parse("1..=5"), Ok(Bound::Between(1.0, 5.0)));
        assert_eq!(Bound::parse("1 ..= 5"), Ok(Bound::Between(1.0, 5.0)));
    }

    #[test]
    fn malformed_bounds_are_refused() {
        for text in [
            "", ">", "=< 5", "> -1", "five", "> 1e3", "1..5", "< inf", "5..=1", ">> 2",
        ] {
            assert!(Bound::parse(text).is_err(), "{text:?} parsed");
        }
        assert!(Bound::parse("5..=1").unwrap_err().contains("empty range"));
    }

    #[test]
    fn bounds_hold_at_their_edges() {
        let check = |text: &str, value: f64| Bound::parse(text).unwrap().holds(value);
        assert!(check("0", 0.0) && !check("0", 1.0));
        assert!(check("> 0", 1.0) && !check("> 0", 0.0));
        assert!(check(">= 1", 1.0) && !check(">= 1", 0.5));
        assert!(check("< 50", 49.9) && !check("< 50", 50.0));
        assert!(check("<= 5", 5.0) && !check("<= 5", 6.0));
        assert!(check("1..=5", 1.0) && check("1..=5", 5.0) && !check("1..=5", 5.5));
        assert!(!check("<= 5", f64::NAN));
    }

    #[test]
    fn bounds_print_back_in_a_form_that_parses_to_the_same() {
        for text in ["0", "< 50", "<= 5", "> 0", ">= 1.5", "1..=5"] {
            let bound = Bound::parse(text).unwrap();
            assert_eq!(bound.to_string(), text);
            assert_eq!(Bound::parse(&bound.to_string()), Ok(bound));
        }
    }

    #[test]
    fn yaml_numbers_are_exact_bounds_and_negatives_are_refused() {
        let read = |t: &str| serde_norway::from_str::<Bound>(t);
        assert_eq!(read("0").unwrap(), Bound::Eq(0.0));
        assert_eq!(read("2.5").unwrap(), Bound::Eq(2.5));
        assert_eq!(read("'> 0'").unwrap(), Bound::Gt(0.0));
        assert!(read("-1").is_err());
        assert!(read("[1]").is_err());
    }
}
