//! Transaction IDs as their column holds them: the 32 bytes that the domain's 64-character
//! hex text spells. Half the bytes in the primary key, so more of it stays cached and each
//! insert touches fewer pages (issue 18).

use super::StoreError;
use crate::ledger::{hash_from_lower_hex, to_hex};

/// Bytes in a transaction ID.
const ID_BYTES: usize = 32;

/// Whether `text` is hex as the domain writes it: digits and lowercase `a`–`f`.
fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The column value of the ID `id` spells, or `None` when it spells none (no transaction is
/// stored under such text, so a lookup of it finds nothing).
pub(super) fn lookup(id: &str) -> Option<[u8; ID_BYTES]> {
    hash_from_lower_hex(id)
}

/// The column value of an ID to be written: text that spells no ID is refused before anything
/// is written.
pub(super) fn to_write(id: &str) -> Result<[u8; ID_BYTES], StoreError> {
    lookup(id).ok_or_else(|| {
        StoreError::Constraint(format!(
            "'{id}' is not a transaction ID (64 lowercase hex characters)"
        ))
    })
}

/// A stored ID back to its hex text.
pub(super) fn from_column(bytes: &[u8]) -> Result<String, StoreError> {
    match bytes.len() {
        ID_BYTES => Ok(to_hex(bytes)),
        n => Err(StoreError::Corrupt(format!(
            "a stored transaction ID of {n} bytes, not {ID_BYTES}"
        ))),
    }
}

/// The column values `[low, high)` that hold exactly the IDs whose hex starts with `prefix`,
/// or `None` when no ID can start with it. Bytes compare as their hex text does, so the
/// range's ends are the prefix padded with `0`, and the prefix plus one in its last digit.
pub(super) fn prefix_range(prefix: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    if prefix.len() > 2 * ID_BYTES || !is_lower_hex(prefix) {
        return None;
    }
    let padded = |text: &str| {
        hex::decode(format!(
            "{text:0<width$}",
            width = text.len() + text.len() % 2
        ))
    };
    let low = padded(prefix).ok()?;
    // The next prefix of the same length, dropping trailing `f`s that carry; all `f`s (or
    // none) have no next one, and one byte more than any ID bounds the range.
    let kept = prefix.trim_end_matches('f');
    let high = match kept.chars().last() {
        None => vec![0xff; ID_BYTES + 1],
        Some(last) => {
            let next = char::from_digit(last.to_digit(16)? + 1, 16)?;
            padded(&format!("{}{next}", &kept[..kept.len() - 1])).ok()?
        }
    };
    Some((low, high))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_lowercase_hex_of_32_bytes_is_an_id() {
        let id = "ab".repeat(32);
        assert_eq!(lookup(&id), Some([0xab; 32]));
        assert_eq!(from_column(&[0xab; 32]).expect("id"), id);
        assert_eq!(lookup(&id.to_uppercase()), None);
        assert_eq!(lookup(&id[..62]), None);
        assert_eq!(lookup(&format!("{}zz", &id[..62])), None);
        assert!(matches!(to_write("nope"), Err(StoreError::Constraint(_))));
        assert!(matches!(from_column(&[1; 31]), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_prefix_no_id_can_start_with_has_no_range() {
        assert_eq!(prefix_range("0g"), None);
        assert_eq!(prefix_range("AB"), None);
        assert_eq!(prefix_range(&"0".repeat(65)), None);
        assert_eq!(prefix_range(""), Some((vec![], vec![0xff; 33])));
        assert_eq!(
            prefix_range("fff"),
            Some((vec![0xff, 0xf0], vec![0xff; 33]))
        );
        assert_eq!(prefix_range("a3f"), Some((vec![0xa3, 0xf0], vec![0xa4])));
    }

    proptest! {
        #![proptest_config(crate::props::config(2000))]

        /// The invariant the prefix search rests on: an ID is in the range exactly when its
        /// hex starts with the prefix.
        #[test]
        fn an_id_is_in_the_range_exactly_when_it_starts_with_the_prefix(
            id in prop::array::uniform32(prop::sample::select(vec![0u8, 0x0f, 0x10, 0xa3, 0xa4, 0xef, 0xf0, 0xff])),
            take in 0usize..=64,
            tweak in prop::option::of((0usize..64, prop::sample::select(vec!['0', '7', 'f']))),
        ) {
            let text = hex::encode(id);
            let mut prefix: String = text[..take].to_string();
            if let Some((at, digit)) = tweak.filter(|(at, _)| *at < take) {
                prefix.replace_range(at..at + 1, &digit.to_string());
            }
            let (low, high) = prefix_range(&prefix).expect("a hex prefix has a range");
            let inside = low.as_slice() <= id.as_slice() && id.as_slice() < high.as_slice();
            prop_assert_eq!(inside, text.starts_with(&prefix), "prefix {}", prefix);
        }
    }
}
