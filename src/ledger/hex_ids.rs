//! Transaction IDs and hashes as the lowercase hex text the domain and the store's trait pass
//! them in. Written into and read from fixed buffers: the `hex` crate's `encode` and `decode`
//! build their results a character at a time through iterators, which took about 5 % of a
//! node's CPU under load (issue 18).

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

/// The 32 bytes that `text` spells in hex (either case), or `None` when it spells none.
pub fn hash_from_hex(text: &str) -> Option<Hash> {
    let mut out = [0; 32];
    hex::decode_to_slice(text, &mut out).ok().map(|()| out)
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
        }

        #[test]
        fn text_that_spells_no_hash_is_none(text in prop_oneof!["[0-9a-fA-F]{62,66}", "[0-9a-gA-G]{64}", "\\PC{0,70}"]) {
            let reference = hex::decode(&text).ok().filter(|b| b.len() == 32);
            prop_assert_eq!(hash_from_hex(&text).map(Vec::from), reference);
        }
    }
}
