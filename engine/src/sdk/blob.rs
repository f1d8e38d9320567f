//! [`Blob`]: the engine's immutable byte string for encoded keys, values and state.
//!
//! Most encodings are short — a `u64` key is at most 10 bytes, a synthetic event under 12 — so
//! a blob of up to [`INLINE`] bytes lives inline, and cloning it is a copy of 24 bytes with no
//! allocation and no atomic counter. A longer one (a Nexmark person with its strings) lives in
//! one shared, reference-counted allocation. Records are cloned at every hop, into state and
//! into changelogs: this is what keeps moving them cheap.
//!
//! A shared blob can also be a suffix of its allocation: [`Blob::suffix`] drops a prefix (an
//! event's variant number before the bid it holds) without copying what follows. And many
//! blobs can share one buffer ([`Blob::within`]): a block of generated events encoded
//! together, made with one allocation instead of one each, and read in the order they lie.
//!
//! Equality, order and hashing are by content, whatever the representation.

use std::sync::Arc;

/// The longest blob kept inline: with its length and the representation's tag, a blob is
/// three words. Records, state entries and outputs hold two or three blobs each and are
/// moved at every hop, so every byte here is paid many times.
pub const INLINE: usize = 22;

/// The words an inline buffer compares as.
const WORDS: usize = INLINE.div_ceil(8);

/// An immutable byte string: inline up to [`INLINE`] bytes, shared beyond.
#[derive(Clone)]
pub struct Blob(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        data: [u8; INLINE],
    },
    /// `bytes[start..]`, longer than [`INLINE`]. The offset fits beside the pointer and the
    /// tag, so a suffix costs no more room than a whole allocation.
    Shared {
        bytes: Arc<[u8]>,
        start: u32,
    },
    /// `buf[start..start + len]`, longer than [`INLINE`]: one of the byte strings in a buffer
    /// they share.
    Within {
        buf: Arc<Vec<u8>>,
        start: u32,
        len: u32,
    },
}

impl Blob {
    /// The empty blob.
    pub const fn new() -> Self {
        Blob(Repr::Inline { len: 0, data: [0; INLINE] })
    }

    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            return Blob(Repr::Inline { len: bytes.len() as u8, data: inline(bytes) });
        }
        Blob::shared(Arc::from(bytes))
    }

    fn shared(bytes: Arc<[u8]>) -> Self {
        assert!(bytes.len() > INLINE, "{} bytes belong inline", bytes.len());
        assert!(u32::try_from(bytes.len()).is_ok(), "a blob of {} bytes", bytes.len());
        Blob(Repr::Shared { bytes, start: 0 })
    }

    /// `bytes`, kept in their own allocation (no copy) unless short enough to live inline.
    pub fn from_vec(bytes: Vec<u8>) -> Blob {
        let len = bytes.len();
        Blob::within(&Arc::new(bytes), 0..len)
    }

    /// `buf[range]`, sharing `buf` (no copy), unless short enough to live inline.
    ///
    /// # Panics
    /// If `range` is not within `buf`.
    pub fn within(buf: &Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Blob {
        let bytes = &buf[range.clone()];
        if bytes.len() <= INLINE {
            return Blob::copy_from_slice(bytes);
        }
        let start = u32::try_from(range.start).expect("a shared buffer's offsets fit a u32");
        let len = u32::try_from(bytes.len()).expect("a blob's length fits a u32");
        Blob(Repr::Within { buf: Arc::clone(buf), start, len })
    }

    /// The bytes from `from` on. A shared blob's suffix shares its allocation (no copy), unless
    /// it is short enough to live inline.
    ///
    /// # Panics
    /// If `from` is past the end.
    pub fn suffix(&self, from: usize) -> Blob {
        let rest = &self.as_slice()[from..];
        match &self.0 {
            Repr::Shared { bytes, start } if rest.len() > INLINE => {
                let start = *start + u32::try_from(from).expect("a blob's length fits a u32");
                Blob(Repr::Shared { bytes: Arc::clone(bytes), start })
            }
            Repr::Within { buf, start, len } if rest.len() > INLINE => {
                let from = u32::try_from(from).expect("a blob's length fits a u32");
                Blob(Repr::Within { buf: Arc::clone(buf), start: *start + from, len: *len - from })
            }
            _ => Blob::copy_from_slice(rest),
        }
    }

    pub fn from_static(bytes: &'static [u8]) -> Self {
        Blob::copy_from_slice(bytes)
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared { bytes, start } => &bytes[*start as usize..],
            Repr::Within { buf, start, len } => &buf[*start as usize..(*start + *len) as usize],
        }
    }
}

/// `bytes` (at most [`INLINE`] of them) at the start of an inline buffer.
fn inline(bytes: &[u8]) -> [u8; INLINE] {
    let mut data = [0u8; INLINE];
    copy_short(&mut data[..bytes.len()], bytes);
    data
}

/// Copies `src` into `dst` (of the same length, at most 32 bytes). Blobs are mostly a few bytes
/// long and made at every hop, so this copies with two overlapping fixed-size moves rather
/// than a call to `memcpy`.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert!(n == dst.len() && n <= 32, "{n} bytes into {}: not a short copy", dst.len());
    fn both_ends<const W: usize>(dst: &mut [u8], src: &[u8]) {
        let n = src.len();
        let head: [u8; W] = src[..W].try_into().expect("W bytes");
        let tail: [u8; W] = src[n - W..].try_into().expect("W bytes");
        dst[..W].copy_from_slice(&head);
        dst[n - W..].copy_from_slice(&tail);
    }
    match n {
        16.. => both_ends::<16>(dst, src),
        8.. => both_ends::<8>(dst, src),
        4.. => both_ends::<4>(dst, src),
        1.. => {
            // 1 to 3 bytes: the first, the middle and the last cover them all.
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        0 => {}
    }
}

impl Blob {
    /// The blob `write` writes into an inline buffer, or `None` if it needs more than
    /// [`INLINE`] bytes (`write` returns `None` then). Encoding in place saves a copy.
    #[inline(always)]
    pub(crate) fn write_inline(write: impl FnOnce(&mut [u8; INLINE]) -> Option<usize>) -> Option<Blob> {
        let mut data = [0u8; INLINE];
        let len = write(&mut data)?;
        assert!(len <= INLINE, "{len} bytes written inline");
        Some(Blob(Repr::Inline { len: len as u8, data }))
    }
}

impl Default for Blob {
    fn default() -> Self {
        Blob::new()
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            return Blob::copy_from_slice(&bytes);
        }
        Blob::shared(Arc::from(bytes))
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Blob::copy_from_slice(bytes)
    }
}

// Inline bytes past `len` are always zero (every inline blob starts from a zeroed buffer and
// is never written again), so two inline blobs compare as their whole buffers, then lengths:
// where the buffers first differ, both blobs hold bytes or one has ended (a zero), exactly as
// comparing the slices would decide; equal buffers leave the shorter blob first.

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, data: x }, Repr::Inline { len: b, data: y }) => a == b && x == y,
            _ => self.as_slice() == other.as_slice(),
        }
    }
}

impl Eq for Blob {}

impl PartialOrd for Blob {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Blob {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, data: x }, Repr::Inline { len: b, data: y }) => {
                words(x).cmp(&words(y)).then(a.cmp(b))
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// An inline buffer as four big-endian words: they order as the bytes do.
#[inline(always)]
fn words(data: &[u8; INLINE]) -> [u64; WORDS] {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        let end = (i + 8).min(INLINE);
        w[..end - i].copy_from_slice(&data[i..end]);
        u64::from_be_bytes(w)
    };
    std::array::from_fn(|i| word(8 * i))
}

impl std::hash::Hash for Blob {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_blobs_live_inline_and_long_ones_are_shared_and_both_compare_by_content() {
        let short = Blob::copy_from_slice(b"card-7");
        assert!(matches!(short.0, Repr::Inline { len: 6, .. }));
        let long = Blob::from(vec![7u8; 64]);
        assert!(matches!(long.0, Repr::Shared { start: 0, .. }));
        assert_eq!(&*long, &[7u8; 64][..]);
        let edge = Blob::from(vec![1u8; INLINE]);
        assert!(matches!(edge.0, Repr::Inline { .. }));
        assert_eq!(Blob::from(b"card-7".to_vec()), short);
        assert!(Blob::new() < short && Blob::copy_from_slice(b"card-8") > short);
        assert_eq!(Blob::new().len(), 0);
        assert_eq!(std::mem::size_of::<Blob>(), 24);
    }

    #[test]
    fn blobs_within_a_buffer_share_it_and_compare_as_their_bytes_do() {
        let bytes: Vec<u8> = (0..=255).collect();
        let buf = Arc::new(bytes.clone());
        let (a, b) = (Blob::within(&buf, 10..100), Blob::within(&buf, 100..200));
        assert!(matches!(a.0, Repr::Within { start: 10, len: 90, .. }));
        assert_eq!((&*a, &*b), (&bytes[10..100], &bytes[100..200]));
        assert_eq!(Arc::strong_count(&buf), 3, "no copy of the buffer");
        assert_eq!(a, Blob::copy_from_slice(&bytes[10..100]));
        assert!(a < b && b > Blob::copy_from_slice(&bytes[10..100]));
        let short = Blob::within(&buf, 5..5 + INLINE);
        assert!(matches!(short.0, Repr::Inline { .. }), "short enough to live inline");
        let tail = a.suffix(40);
        assert!(matches!(tail.0, Repr::Within { start: 50, len: 50, .. }));
        assert_eq!(&*tail, &bytes[50..100]);
        assert!(matches!(a.suffix(90 - INLINE).0, Repr::Inline { .. }));
    }

    #[test]
    fn inline_blobs_order_and_compare_as_their_bytes_do() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![0, 1],
            vec![1, 0],
            vec![255; 8],
            [vec![255; 8], vec![0]].concat(),
            vec![7; INLINE],
            [vec![7; INLINE - 1], vec![0]].concat(),
            vec![7; INLINE + 1],
            [vec![7; 24], vec![1, 2]].concat(),
        ];
        for a in &samples {
            for b in &samples {
                let (x, y) = (Blob::copy_from_slice(a), Blob::copy_from_slice(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(x == y, a == b, "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn a_suffix_shares_a_long_blob_and_copies_a_short_one() {
        let whole: Vec<u8> = (0..64).collect();
        let blob = Blob::from(whole.clone());
        let tail = blob.suffix(1);
        assert!(matches!(tail.0, Repr::Shared { start: 1, .. }), "shared, not copied");
        assert_eq!(&*tail, &whole[1..]);
        let tail_of_tail = tail.suffix(2);
        assert!(matches!(tail_of_tail.0, Repr::Shared { start: 3, .. }));
        assert_eq!(tail_of_tail, Blob::copy_from_slice(&whole[3..]), "equal by content");
        let short = blob.suffix(64 - INLINE);
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert_eq!(&*short, &whole[64 - INLINE..]);
        assert_eq!(&*Blob::copy_from_slice(b"card-7").suffix(5), b"7");
        assert!(blob.suffix(64).is_empty());
    }

    #[test]
    fn every_inline_length_copies_exactly() {
        let source: Vec<u8> = (1..=INLINE as u8).collect();
        for n in 0..=INLINE {
            let blob = Blob::copy_from_slice(&source[..n]);
            assert_eq!(&*blob, &source[..n], "{n} bytes");
        }
    }
}
