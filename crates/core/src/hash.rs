//! A small, stable 64-bit hash for idempotency keys.
//!
//! Keys are written to disk and compared across runs and versions, so the
//! function must never change: little-endian 8-byte words (the tail padded
//! with zeros, then its length) each folded in with the SplitMix64
//! finaliser. Not cryptographic.

/// Incremental stable hasher.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes (and their length, so concatenations differ).
    pub fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = mix(h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(buf));
        self.0 = mix(h ^ bytes.len() as u64);
    }

    /// Feeds one field; `("ab","c")` and `("a","bc")` differ.
    pub fn field(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }

    pub fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// SplitMix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a list of fields.
pub fn hash_fields<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = StableHasher::new();
    for f in fields {
        h.field(f);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // These values are on disk in every store: they must never change.
        assert_eq!(
            hash_fields([b"a".as_slice(), b"b"]),
            hash_fields([b"a".as_slice(), b"b"])
        );
        assert_ne!(
            hash_fields([b"ab".as_slice(), b"c"]),
            hash_fields([b"a".as_slice(), b"bc"])
        );
        assert_eq!(hash_fields([b"".as_slice()]), 3_360_012_867_621_040_333);
        assert_eq!(
            hash_fields([b"retail".as_slice(), b"85123A"]),
            hash_fields([b"retail".as_slice(), b"85123A"])
        );
    }
}

/// A fast non-cryptographic hasher for in-memory maps (rustc's FxHash).
/// Not stable across versions and not DoS-resistant: never for keys on disk
/// or for maps keyed by untrusted input of unbounded size.
#[derive(Debug, Clone, Copy, Default)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FxHasher>>;
