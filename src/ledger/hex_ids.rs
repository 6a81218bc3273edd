//! Transaction IDs and hashes as the lowercase hex text the domain and the store's trait pass
//! them in. Written into and read from fixed buffers, and read through a table: the `hex`
//! crate's `encode` and `decode` build their results a character at a time through iterators,
//! which took about 5 % of a node's CPU under load, and its `decode_to_slice` with a check for
//! lowercase first still about 1 % (issue 18).

use super::Hash;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The lowercase hex text of `bytes`.
pub fn to_hex(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

/// A table of each byte's value as a hex digit (`0`–`9`, and `a`–`f`, also `A`–`F` if
/// `any_case`), or [`NOT_A_DIGIT`].
const fn digit_table(any_case: bool) -> [u8; 256] {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < 16 {
        table[DIGITS[i] as usize] = i as u8;
        if any_case {
            table[DIGITS[i].to_ascii_uppercase() as usize] = i as u8;
        }
        i += 1;
    }
    table
}
const NOT_A_DIGIT: u8 = 0xff;
const ANY_CASE: [u8; 256] = digit_table(true);
const LOWER_CASE: [u8; 256] = digit_table(false);

/// The 32 bytes that `text` spells with the digits of `table`: checked and decoded in one pass
/// (every ID stored, sealed, looked up or announced comes through here).
fn decode(text: &str, table: &[u8; 256]) -> Option<Hash> {
    let text: &[u8; 64] = text.as_bytes().try_into().ok()?;
    let mut out = [0; 32];
    // Digits are below 16; a byte that is none sets the high bits.
    let mut seen = 0;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (table[usize::from(pair[0])], table[usize::from(pair[1])]);
        seen |= high | low;
        *byte = (high << 4) | low;
    }
    (seen < 16).then_some(out)
}

/// The 32 bytes that `text` spells in hex (either case), or `None` when it spells none.
pub fn hash_from_hex(text: &str) -> Option<Hash> {
    decode(text, &ANY_CASE)
}

/// The 32 bytes that `text` spells in lowercase hex (as the domain writes it), or `None`.
pub fn hash_from_lower_hex(text: &str) -> Option<Hash> {
    decode(text, &LOWER_CASE)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(crate::props::config(500))]

        /// Both agree with the `hex` crate, the reference they replace.
        #[test]
        fn agree_with_the_hex_crate(bytes in proptest::array::uniform32(any::<u8>())) {
            let text = to_hex(bytes);
            prop_assert_eq!(&text, &hex::encode(bytes));
            prop_assert_eq!(hash_from_hex(&text), Some(bytes));
            prop_assert_eq!(hash_from_hex(&text.to_uppercase()), Some(bytes));
            prop_assert_eq!(hash_from_lower_hex(&text), Some(bytes));
            let upper = text.to_uppercase();
            prop_assert_eq!(hash_from_lower_hex(&upper), (upper == text).then_some(bytes));
        }

        #[test]
        fn text_that_spells_no_hash_is_none(text in prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{62,66}", "[0-9a-gA-G]{64}", "\\PC{0,70}"]) {
            let reference = hex::decode(&text).ok().filter(|b| b.len() == 32);
            prop_assert_eq!(hash_from_hex(&text).map(Vec::from), reference.clone());
            let lower = !text.bytes().any(|b| b.is_ascii_uppercase());
            prop_assert_eq!(hash_from_lower_hex(&text).map(Vec::from), reference.filter(|_| lower));
        }
    }
}
