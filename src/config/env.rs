//! `SORCHA_PEER_*` environment variables nobody reads. A typo such as
//! `SORCHA_PEER_HEARTBEAT_INTERVALL`, or a variable from an older release such as
//! `SORCHA_PEER_LOG`, would otherwise be ignored in silence and the operator would believe it
//! took effect. `serve` refuses to start on one; the client commands warn.

use super::{ENV_PREFIX, KEYS};

/// A `SORCHA_PEER_*` variable that is neither a configuration key nor one of the CLI's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVar {
    pub name: String,
    /// The known variables it most likely meant (the closest, when any is close).
    pub suggestions: Vec<String>,
}

impl std::fmt::Display for UnknownVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown environment variable {}", self.name)?;
        if self.suggestions.is_empty() {
            write!(f, " (no configuration key or option reads it)")
        } else {
            write!(f, " (did you mean {}?)", self.suggestions.join(" or "))
        }
    }
}

/// Every variable read: `SORCHA_PEER_<KEY>` for each key, plus `cli_vars` (the CLI's own,
/// such as `SORCHA_PEER_NODE`).
pub fn known_vars(cli_vars: &[String]) -> Vec<String> {
    let mut known: Vec<String> = KEYS
        .iter()
        .map(|k| format!("{ENV_PREFIX}{}", k.name.to_ascii_uppercase()))
        .chain(cli_vars.iter().cloned())
        .collect();
    known.sort();
    known.dedup();
    known
}

/// The `SORCHA_PEER_*` names among `present` that are not in `known`, in order, each with the
/// nearest known name when it is close (a few edits away, or one extends the other).
pub fn unknown_vars<'a>(
    present: impl IntoIterator<Item = &'a str>,
    known: &[String],
) -> Vec<UnknownVar> {
    let mut unknown: Vec<UnknownVar> = present
        .into_iter()
        .filter(|name| name.starts_with(ENV_PREFIX) && !known.iter().any(|k| k == name))
        .map(|name| UnknownVar {
            name: name.to_string(),
            suggestions: nearest(name, known),
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown
}

/// Most known names suggested for one unknown variable.
const MAX_SUGGESTIONS: usize = 3;

fn nearest(name: &str, known: &[String]) -> Vec<String> {
    let bare = &name[ENV_PREFIX.len()..];
    let scored: Vec<(usize, &String)> = known
        .iter()
        .map(|k| {
            let other = k.strip_prefix(ENV_PREFIX).unwrap_or(k);
            // `LOG` for `LOG_LEVEL`: a shortened name is close whatever its length.
            let extends = other.starts_with(&format!("{bare}_")) || bare.starts_with(other);
            let d = if extends {
                1
            } else {
                edit_distance(bare, other)
            };
            (d, k)
        })
        .collect();
    let Some(best) = scored.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    if best > 2.max(bare.len() / 4) {
        return Vec::new();
    }
    scored
        .into_iter()
        .filter(|(d, _)| *d == best)
        .map(|(_, k)| k.clone())
        .take(MAX_SUGGESTIONS)
        .collect()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_old_names_are_found_with_the_nearest_known_name() {
        let known = known_vars(&["SORCHA_PEER_NODE".into(), "SORCHA_PEER_TOKEN".into()]);
        let present = [
            "SORCHA_PEER_HEARTBEAT_INTERVALL",
            "SORCHA_PEER_LOG",
            "SORCHA_PEER_NODE",
            "SORCHA_PEER_SEEDS",
            "SORCHA_PEER_WHATEVER_ELSE_ENTIRELY",
            "PATH",
        ];
        let unknown = unknown_vars(present, &known);
        let shown: Vec<String> = unknown.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "unknown environment variable SORCHA_PEER_HEARTBEAT_INTERVALL (did you mean SORCHA_PEER_HEARTBEAT_INTERVAL?)",
                "unknown environment variable SORCHA_PEER_LOG (did you mean SORCHA_PEER_LOG_FORMAT or SORCHA_PEER_LOG_LEVEL?)",
                "unknown environment variable SORCHA_PEER_WHATEVER_ELSE_ENTIRELY (no configuration key or option reads it)",
            ]
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
