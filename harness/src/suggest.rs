//! "Did you mean" hints for misspelt keys.

/// Rewrites serde's unknown-field message into one that names the closest known key.
///
/// serde builds the message as "unknown field `KEY`, expected one of `A`, `B`" (or "expected `A`"
/// or "expected `A` or `B`"), optionally preceded by a path such as "broker: " from serde_norway.
/// The known keys are read back from the message rather than from a list kept here, so the hint
/// stays correct for nested sections when the full scenario format arrives. A unit test pins the
/// message shape, so a serde change that breaks this parsing fails loudly instead of silently
/// dropping the hint. Returns `None` for any other message.
pub(crate) fn rewrite_unknown_field(message: &str) -> Option<String> {
    rewrite_unknown(message, "unknown field `", "key")
        .or_else(|| rewrite_unknown(message, "unknown variant `", "value"))
}

/// The rewrite for one of serde's "unknown ..." messages: fields are keys, and variants (a
/// fault kind, a `kind:` tag, an enum value) are values.
fn rewrite_unknown(message: &str, marker: &str, noun: &str) -> Option<String> {
    let start = message.find(marker)?;
    let (prefix, rest) = (&message[..start], &message[start + marker.len()..]);
    let (key, expected) = rest.split_once("`, expected ")?;
    // The known keys are the backtick-quoted words: every second piece when split on backticks.
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if known.is_empty() {
        return None;
    }
    Some(match closest(key, &known) {
        Some(best) => format!("{prefix}unknown {noun} `{key}`; did you mean `{best}`?"),
        None => format!("{prefix}unknown {noun} `{key}`; expected {expected}"),
    })
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
///
/// Case is ignored so `Name` suggests `name`, and transpositions count as one edit (optimal string
/// alignment) so `nmae` does too. Ties go to the earliest candidate, which keeps output stable.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let distance = strsim::osa_distance(&word, &candidate.to_lowercase());
        // Short keys tolerate one edit; otherwise unrelated short words would match each other.
        let allowed = if candidate.chars().count() <= 4 { 1 } else { 2 };
        if distance <= allowed && best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::{closest, rewrite_unknown_field};

    const KEYS: &[&str] = &["name", "description", "seed", "producers", "consumers"];

    #[test]
    fn close_typos_are_suggested() {
        assert_eq!(closest("descripton", KEYS), Some("description"));
        assert_eq!(closest("nmae", KEYS), Some("name"));
        assert_eq!(closest("Name", KEYS), Some("name"));
        assert_eq!(closest("sed", KEYS), Some("seed"));
        assert_eq!(closest("producer", KEYS), Some("producers"));
    }

    #[test]
    fn unrelated_words_get_no_suggestion() {
        assert_eq!(closest("colour", KEYS), None);
        assert_eq!(closest("x", KEYS), None);
        assert_eq!(closest("need", &["name", "seed"]), Some("seed"));
    }

    #[test]
    fn ties_go_to_the_first_candidate() {
        assert_eq!(closest("ab", &["ac", "ad"]), Some("ac"));
    }

    // This pins the shape of the message serde and serde_norway produce; see the function docs.
    #[test]
    fn real_serde_message_is_rewritten() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only the error is inspected")]
        struct Keys {
            name: String,
            description: String,
        }
        let err = match serde_norway::from_str::<Keys>("descripton: x\n") {
            Ok(keys) => panic!("expected an error, parsed {keys:?}"),
            Err(err) => err.to_string(),
        };
        assert_eq!(
            rewrite_unknown_field(&err).as_deref(),
            Some("unknown key `descripton`; did you mean `description`?")
        );
    }

    #[test]
    fn unmatched_keys_list_the_known_ones_and_keep_the_path() {
        assert_eq!(
            rewrite_unknown_field("broker: unknown field `colour`, expected `name` or `seed`")
                .as_deref(),
            Some("broker: unknown key `colour`; expected `name` or `seed`")
        );
        assert_eq!(rewrite_unknown_field("missing field `name`"), None);
        assert_eq!(
            rewrite_unknown_field(
                "faults[0].fault: unknown variant `crahs`, expected `crash` or `pause`"
            )
            .as_deref(),
            Some("faults[0].fault: unknown value `crahs`; did you mean `crash`?")
        );
    }
}
