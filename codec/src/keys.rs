//! Order-preserving ("memcomparable") key encoding.
//!
//! A key is a sequence of parts; the byte-wise order of encoded keys equals the
//! lexicographic order of the part sequences, and the encoding of a complete
//! prefix of parts is a byte prefix of the encoding of the whole key, so prefix
//! scans work. Integers are big-endian; strings are escaped (`0x00` becomes
//! `0x00 0xFF`) and terminated by `0x00 0x01`.
//!
//! Nothing here knows about RocksDB; it is pure byte manipulation.

/// One component of a composite key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyPart<'a> {
    U64(u64),
    Str(&'a str),
}

/// Encodes `parts` into a fresh byte vector.
pub fn encode(parts: &[KeyPart<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.len() * 12);
    for part in parts {
        encode_part(&mut out, *part);
    }
    out
}

fn encode_part(out: &mut Vec<u8>, part: KeyPart<'_>) {
    match part {
        KeyPart::U64(n) => out.extend_from_slice(&n.to_be_bytes()),
        KeyPart::Str(s) => {
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0x00, 0x01]);
        }
    }
}

/// Encodes a single big-endian `u64`, the key of the Raft log and of the event log.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Decodes a key made by [`u64_key`].
pub fn decode_u64(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// The smallest key strictly greater than every key that starts with `prefix`,
/// or `None` when no such key exists (the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Owned {
        U64(u64),
        Str(String),
    }

    fn borrow(parts: &[Owned]) -> Vec<KeyPart<'_>> {
        parts
            .iter()
            .map(|p| match p {
                Owned::U64(n) => KeyPart::U64(*n),
                Owned::Str(s) => KeyPart::Str(s),
            })
            .collect()
    }

    fn part() -> impl Strategy<Value = Owned> {
        prop_oneof![
            any::<u64>().prop_map(Owned::U64),
            "[\\x00-\\x02a-c\\xff]{0,6}".prop_map(Owned::Str),
        ]
    }

    /// Keys of one schema: the same part kinds at the same positions.
    fn same_schema() -> impl Strategy<Value = (Vec<Owned>, Vec<Owned>)> {
        prop::collection::vec(any::<bool>(), 1..4).prop_flat_map(|kinds| {
            let one = |kinds: Vec<bool>| {
                kinds
                    .into_iter()
                    .map(|is_int| {
                        if is_int {
                            any::<u64>().prop_map(Owned::U64).boxed()
                        } else {
                            "[\\x00-\\x02a-c]{0,6}".prop_map(Owned::Str).boxed()
                        }
                    })
                    .collect::<Vec<_>>()
            };
            (one(kinds.clone()), one(kinds))
        })
    }

    proptest! {
        #[test]
        fn encoding_preserves_order((a, b) in same_schema()) {
            let (ea, eb) = (encode(&borrow(&a)), encode(&borrow(&b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }

        #[test]
        fn prefix_parts_encode_to_byte_prefix(parts in prop::collection::vec(part(), 1..5), cut in 0usize..5) {
            let cut = cut.min(parts.len());
            let whole = encode(&borrow(&parts));
            let prefix = encode(&borrow(&parts[..cut]));
            prop_assert!(whole.starts_with(&prefix));
        }

        #[test]
        fn prefix_end_bounds_every_extension(prefix in prop::collection::vec(any::<u8>(), 0..6), tail in prop::collection::vec(any::<u8>(), 0..6)) {
            let mut key = prefix.clone();
            key.extend_from_slice(&tail);
            if let Some(end) = prefix_end(&prefix) {
                prop_assert!(key < end);
                prop_assert!(prefix < end);
            }
        }
    }

    #[test]
    fn strings_with_nul_do_not_collide_with_shorter_strings() {
        let a = encode(&[KeyPart::Str("a\0"), KeyPart::U64(1)]);
        let b = encode(&[KeyPart::Str("a"), KeyPart::U64(1)]);
        assert_ne!(a, b);
        assert!(b < a);
    }

    #[test]
    fn u64_keys_round_trip_in_order() {
        assert_eq!(decode_u64(&u64_key(42)), Some(42));
        assert!(u64_key(255) < u64_key(256));
        assert_eq!(decode_u64(&[1, 2]), None);
    }
}
