//! Finding where in a scenario file a path such as `producers[1].rate` was written, so that
//! errors found after parsing (bounds, cross-references) still point at `file:line:column`.
//!
//! serde_norway keeps no positions in parsed values; it only attaches the position of the YAML
//! node being visited to an error raised while visiting it. So the file is parsed a second time
//! with a deserializer that walks the path, skips everything else, and raises a marker error
//! at the target: the target mapping key's position (or, for a list element, the element's).
//! This costs one more parse of a small file, and only when there is an error to report.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the file, e.g. `producers[1].rate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct YamlPath(pub Vec<Segment>);

impl YamlPath {
    /// Parses `a.b[1].c`. Keys may contain anything but `.` and `[`.
    pub fn parse(text: &str) -> YamlPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                if open > 0 {
                    segments.push(Segment::Key(rest[..open].to_owned()));
                }
                rest = &rest[open..];
                while let Some(inner) = rest.strip_prefix('[') {
                    let Some((index, after)) = inner.split_once(']') else {
                        break;
                    };
                    if let Ok(index) = index.parse() {
                        segments.push(Segment::Index(index));
                    }
                    rest = after;
                }
            } else {
                segments.push(Segment::Key(rest.to_owned()));
            }
        }
        YamlPath(segments)
    }

    /// The path with one more key.
    pub fn key(&self, key: &str) -> YamlPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        YamlPath(segments)
    }

    /// The path with one more index.
    pub fn index(&self, index: usize) -> YamlPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        YamlPath(segments)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line and column of the deepest part of `path` that exists in `text`: the whole
/// path when it was written, else its longest written prefix (a default value has no position
/// of its own, so the section that left it out is the best place to point). `None` only when
/// nothing of it is in the file, or the file does not parse.
pub fn locate(text: &str, path: &YamlPath) -> Option<(usize, usize)> {
    (1..=path.0.len())
        .rev()
        .find_map(|len| locate_exact(text, &path.0[..len]))
}

/// The marker error's text; no real error contains it.
const MARKER: &str = "\u{1}mqsim-locate\u{1}";

fn locate_exact(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    match (Walk { path }).deserialize(deserializer) {
        Err(err) if err.to_string().contains(MARKER) => {
            err.location().map(|at| (at.line(), at.column()))
        }
        _ => None,
    }
}

/// Walks `path`; at its end it raises the marker error.
struct Walk<'p> {
    path: &'p [Segment],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            // Only list elements end a walk here; a key ends it in `Key`.
            deserializer.deserialize_any(Here)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

/// Raises the marker on whatever node it visits.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARKER))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARKER))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return skip_map(map);
        };
        while let Some(found) = map.next_key_seed(Key {
            wanted,
            last: rest.is_empty(),
        })? {
            if found {
                return map.next_value_seed(Walk { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((&Segment::Index(wanted), rest)) = self.path.split_first() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut index = 0;
        loop {
            if index == wanted {
                return seq.next_element_seed(Walk { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    // Scalars: the path goes further than the file does.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A mapping key: says whether it is the wanted one, and raises the marker when it is the last
/// step, so that the position is the key's.
struct Key<'w> {
    wanted: &'w str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key != self.wanted {
            return Ok(false);
        }
        if self.last {
            return Err(E::custom(MARKER));
        }
        Ok(true)
    }

    // Keys that are not strings are never wanted.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        skip_map(map).map(|()| false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Where a key named `key` is written below `path`, first in file order, with its path.
///
/// serde reads internally tagged enums (`processing: {kind: uniform, ...}`, `fault: {kind:
/// crash, ...}`) from a buffer, so an unknown key inside one is reported at the enclosing list
/// element without the rest of the path. Searching for the key below that element recovers
/// both. The key could in principle also occur in an earlier sibling, but serde reports the
/// first unknown key, so an earlier occurrence would have been reported instead.
pub fn find_key_below(text: &str, path: &YamlPath, key: &str) -> Option<(YamlPath, usize, usize)> {
    search(text, path, Target::Key(key))
}

/// The sections read as internally tagged enums, whose values serde reports without a
/// position of their own.
const TAGGED_SECTIONS: [&str; 4] = ["processing", "skew", "durability", "fault"];

/// Where a scalar written as `value` is below `path`, inside a kind-tagged section
/// (`processing`, `skew`, `durability`, `fault`), first in file order, with its path.
///
/// The same buffering as for keys (see [`find_key_below`]) loses the position of a bad value
/// inside those sections. Only values inside them are searched, so that an equal value
/// elsewhere in the element (`max_messages: 5` beside `processing: {time: 5}`) is not taken
/// for it.
pub fn find_tagged_value_below(
    text: &str,
    path: &YamlPath,
    value: &str,
) -> Option<(YamlPath, usize, usize)> {
    search(text, path, Target::Value(value))
}

fn search(text: &str, path: &YamlPath, target: Target<'_>) -> Option<(YamlPath, usize, usize)> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    let seed = Search {
        path: &path.0,
        below: YamlPath::default(),
        target,
        tagged: false,
    };
    let err = seed.deserialize(deserializer).err()?;
    let message = err.to_string();
    let found = message.split_once(MARKER)?.1;
    // serde_norway may append the position after the custom message.
    let found = found.split(" at line ").next().unwrap_or(found);
    let location = err.location()?;
    Some((YamlPath::parse(found), location.line(), location.column()))
}

/// What a search looks for.
#[derive(Debug, Clone, Copy)]
enum Target<'t> {
    /// A mapping key with this name.
    Key(&'t str),
    /// A scalar value written so, inside a tagged section.
    Value(&'t str),
}

/// A mapping key while searching: its text (`None` when it is not a string), or the marker
/// with the key's path when it is the one searched for, raised while the key is visited so
/// that the position is the key's.
struct SearchKey<'s> {
    key: Option<&'s str>,
    below: &'s YamlPath,
}

impl<'de> DeserializeSeed<'de> for SearchKey<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SearchKey<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        if self.key == Some(name) {
            return Err(E::custom(format!("{MARKER}{}", self.below.key(name))));
        }
        Ok(Some(name.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Walks to `path`, then searches every mapping below for `key`, raising the marker with the
/// found key's path.
struct Search<'p> {
    path: &'p [Segment],
    below: YamlPath,
    target: Target<'p>,
    /// Whether this node is inside a kind-tagged section.
    tagged: bool,
}

impl Search<'_> {
    /// The marker for a scalar written as `written`, if it is the value searched for.
    fn check_value<E: de::Error>(&self, written: &str) -> Result<(), E> {
        match self.target {
            Target::Value(value) if self.path.is_empty() && self.tagged && value == written => {
                Err(E::custom(format!("{MARKER}{}", self.below)))
            }
            _ => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Search<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Search<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let wanted_key = match self.target {
            Target::Key(key) if self.path.is_empty() => Some(key),
            _ => None,
        };
        let key_seed = || SearchKey {
            key: wanted_key,
            below: &self.below,
        };
        while let Some(name) = map.next_key_seed(key_seed())? {
            let Some(name) = name else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match self.path.split_first() {
                Some((Segment::Key(wanted), rest)) if *wanted == name => {
                    return map.next_value_seed(Search {
                        path: rest,
                        below: self.below.key(&name),
                        target: self.target,
                        tagged: self.tagged || TAGGED_SECTIONS.contains(&name.as_str()),
                    });
                }
                Some(_) => {
                    map.next_value::<IgnoredAny>()?;
                }
                None => map.next_value_seed(Search {
                    path: &[],
                    below: self.below.key(&name),
                    target: self.target,
                    tagged: self.tagged || TAGGED_SECTIONS.contains(&name.as_str()),
                })?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let step = match self.path.split_first() {
                Some((&Segment::Index(wanted), rest)) if wanted == index => Some(rest),
                Some(_) => None,
                None => Some(&[][..]),
            };
            let more = match step {
                Some(rest) => seq.next_element_seed(Search {
                    path: rest,
                    below: self.below.index(index),
                    target: self.target,
                    tagged: self.tagged,
                })?,
                None => seq.next_element::<IgnoredAny>()?.map(|_| ()),
            };
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.check_value(&b.to_string())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.check_value(&n.to_string())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.check_value(&n.to_string())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        self.check_value(&n.to_string())
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.check_value(text)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{YamlPath, find_key_below, find_tagged_value_below, locate};

    const TEXT: &str = "\
name: a
producers:
  - destination: q
    rate: 5/s
  - destination: r
    rate: 7/s
    retry: {max_backoff: 1s}
broker:
  destinations: [{name: q}, {name: r}]
";

    fn at(path: &str) -> Option<(usize, usize)> {
        locate(TEXT, &YamlPath::parse(path))
    }

    #[test]
    fn paths_round_trip_through_text() {
        for text in [
            "a",
            "a.b",
            "producers[1].rate",
            "faults[0].fault.crash.hosts",
            "a[0][2]",
        ] {
            assert_eq!(YamlPath::parse(text).to_string(), text);
        }
    }

    #[test]
    fn keys_are_found_at_their_own_position() {
        assert_eq!(at("name"), Some((1, 1)));
        assert_eq!(at("producers"), Some((2, 1)));
        assert_eq!(at("producers[1].rate"), Some((6, 5)));
        assert_eq!(at("producers[1].retry.max_backoff"), Some((7, 13)));
        assert_eq!(at("broker.destinations[1].name"), Some((9, 30)));
    }

    #[test]
    fn keys_below_a_path_are_found_with_their_path() {
        let found = find_key_below(TEXT, &YamlPath::parse("producers[1]"), "max_backoff");
        assert_eq!(
            found.map(|(path, line, column)| (path.to_string(), line, column)),
            Some(("producers[1].retry.max_backoff".to_owned(), 7, 13))
        );
        assert_eq!(
            find_key_below(TEXT, &YamlPath::parse("producers[0]"), "retry"),
            None
        );
        let root = find_key_below(TEXT, &YamlPath::default(), "name");
        assert_eq!(root.map(|(p, ..)| p.to_string()), Some("name".to_owned()));
    }

    #[test]
    fn values_are_found_only_inside_tagged_sections() {
        let text = "consumers:\n  - max_messages: 5\n    processing: {kind: constant, time: 5}\n";
        let found = find_tagged_value_below(text, &YamlPath::parse("consumers[0]"), "5");
        assert_eq!(
            found.map(|(path, line, column)| (path.to_string(), line, column)),
            Some(("consumers[0].processing.time".to_owned(), 3, 40))
        );
        assert_eq!(
            find_tagged_value_below(text, &YamlPath::parse("consumers[0]"), "6"),
            None
        );
    }

    #[test]
    fn missing_parts_fall_back_to_the_deepest_written_prefix() {
        assert_eq!(at("producers[1].keys.count"), at("producers[1]"));
        assert_eq!(at("producers[7].rate"), at("producers"));
        assert_eq!(at("drain.timeout"), None);
        assert_eq!(locate("- [", &YamlPath::parse("a")), None);
    }
}
