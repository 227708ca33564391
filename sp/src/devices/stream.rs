//! What the devices that stream bytes (virtio-console, virtio-vsock) and the services behind
//! them share: [`Ring`], the bookkeeping of a fixed first-in first-out byte queue over storage
//! kept elsewhere (so that a device can keep many in one allocation of a power-of-two size,
//! which is what the partition's buddy heap hands out); [`ByteRing`], one with its storage
//! inline; [`Output`], where a service writes bytes for its peer, so that one service serves
//! the console's outbox and a vsock connection's transmit buffer alike; and the simplest
//! service, [`Echo`]. Nothing here allocates or grows.

use zerocopy::IntoBytes;

/// Where a service writes bytes for its peer.
pub trait Output {
    /// Queues `bytes`; returns how many were taken (the rest did not fit).
    fn push(&mut self, bytes: &[u8]) -> usize;
    /// Bytes that still fit.
    fn room(&self) -> usize;
    /// Whether nothing is waiting to be sent (so room will not grow by waiting).
    fn is_empty(&self) -> bool;
}

/// Where the held bytes of a ring are in its storage (a byte slice the caller keeps; each
/// method takes it). The ring holds at most `storage.len()` bytes; given storage of another
/// size than before it still never reads or writes outside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// Index of the oldest byte.
    start: usize,
    /// Bytes held.
    len: usize,
}

impl Ring {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { start: 0, len: 0 }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that still fit in `storage`.
    pub fn room(&self, storage: &[u8]) -> usize {
        storage.len().saturating_sub(self.len)
    }

    /// `i` taken back into a ring of `cap` bytes, for `i < 2 * cap`.
    fn wrap(i: usize, cap: usize) -> usize {
        i.checked_sub(cap).unwrap_or(i)
    }

    /// Appends as much of `data` as fits; returns how many bytes.
    pub fn push(&mut self, storage: &mut [u8], data: &[u8]) -> usize {
        let cap = storage.len();
        let take = data.len().min(self.room(storage));
        let mut done = 0;
        while done < take {
            // The free space from the end of the held bytes up to the end of the storage.
            let at = Self::wrap(self.start.saturating_add(self.len), cap);
            let piece = take.saturating_sub(done).min(cap.saturating_sub(at));
            let (Some(slot), Some(src)) = (
                storage.get_mut(at..at.saturating_add(piece)),
                data.get(done..done.saturating_add(piece)),
            ) else {
                break;
            };
            if piece == 0 {
                break;
            }
            // Never refused: both are `piece` bytes.
            let _ = src.write_to(slot);
            done = done.saturating_add(piece);
            self.len = self.len.saturating_add(piece);
        }
        done
    }

    /// The oldest held bytes that lie in one piece (all of them unless they wrap).
    pub fn front<'a>(&self, storage: &'a [u8]) -> &'a [u8] {
        let end = self.start.saturating_add(self.len).min(storage.len());
        storage.get(self.start..end).unwrap_or(&[])
    }

    /// Drops the `n` oldest bytes (at most all of them) of a ring over `cap` bytes of storage.
    pub fn consume(&mut self, cap: usize, n: usize) {
        let n = n.min(self.len);
        self.start = Self::wrap(self.start.saturating_add(n), cap);
        self.len = self.len.saturating_sub(n);
        if self.len == 0 {
            self.start = 0;
        }
    }

    /// Moves up to `out.len()` of the oldest bytes into `out`; returns how many.
    pub fn pop(&mut self, storage: &[u8], out: &mut [u8]) -> usize {
        let mut done = 0;
        while done < out.len() && !self.is_empty() {
            let front = self.front(storage);
            let n = front.len().min(out.len().saturating_sub(done));
            let (Some(dst), Some(src)) =
                (out.get_mut(done..done.saturating_add(n)), front.get(..n))
            else {
                break;
            };
            if n == 0 {
                break;
            }
            // Never refused: both are `n` bytes.
            let _ = src.write_to(dst);
            done = done.saturating_add(n);
            self.consume(storage.len(), n);
        }
        done
    }

    /// Forgets every held byte.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// A [`Ring`] and its storage, borrowed: what a service writes into.
pub struct RingBuf<'a> {
    /// The bookkeeping.
    pub ring: &'a mut Ring,
    /// The storage.
    pub storage: &'a mut [u8],
}

impl Output for RingBuf<'_> {
    fn push(&mut self, bytes: &[u8]) -> usize {
        self.ring.push(self.storage, bytes)
    }

    fn room(&self) -> usize {
        self.ring.room(self.storage)
    }

    fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// A first-in first-out queue of at most `N` bytes, its storage inline.
#[derive(Clone, Debug)]
pub struct ByteRing<const N: usize> {
    storage: [u8; N],
    ring: Ring,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            storage: [0; N],
            ring: Ring::new(),
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Bytes that still fit.
    pub fn room(&self) -> usize {
        self.ring.room(&self.storage)
    }

    /// Appends as much of `bytes` as fits; returns how many.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.ring.push(&mut self.storage, bytes)
    }

    /// The oldest held bytes that lie in one piece.
    pub fn front(&self) -> &[u8] {
        self.ring.front(&self.storage)
    }

    /// Drops the `n` oldest bytes.
    pub fn consume(&mut self, n: usize) {
        self.ring.consume(N, n);
    }

    /// Moves up to `out.len()` of the oldest bytes into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        self.ring.pop(&self.storage, out)
    }

    /// Forgets every held byte.
    pub fn clear(&mut self) {
        self.ring.clear();
    }
}

impl<const N: usize> Output for ByteRing<N> {
    fn push(&mut self, bytes: &[u8]) -> usize {
        ByteRing::push(self, bytes)
    }

    fn room(&self) -> usize {
        ByteRing::room(self)
    }

    fn is_empty(&self) -> bool {
        ByteRing::is_empty(self)
    }
}

/// A service that sends every byte back.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Echo {
    /// Sends back as much of `input` as `out` has room for; returns how many bytes that was.
    pub fn feed(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        out.push(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pop_wrap_and_bounds() {
        let mut ring = ByteRing::<8>::new();
        assert_eq!(ring.push(b"abcdef"), 6);
        assert_eq!(ring.push(b"ghij"), 2, "only the room is taken");
        assert_eq!(ring.room(), 0);
        let mut out = [0u8; 5];
        assert_eq!(ring.pop(&mut out), 5);
        assert_eq!(&out, b"abcde");
        // Wraps: 3 held at the end, 5 more go to the start.
        assert_eq!(ring.push(b"12345"), 5);
        assert_eq!(ring.front(), b"fgh", "the piece before the wrap");
        ring.consume(2);
        assert_eq!(ring.front(), b"h");
        let mut all = [0u8; 16];
        assert_eq!(ring.pop(&mut all), 6);
        assert_eq!(&all[..6], b"h12345");
        assert!(ring.is_empty());
        assert_eq!(ring.front(), b"");
        ring.consume(100);
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.push(b"xy"), 2);
        ring.clear();
        assert!(ring.is_empty() && ring.room() == 8);
        // A zero-sized ring takes nothing and never panics.
        let mut none = ByteRing::<0>::new();
        assert_eq!(none.push(b"a"), 0);
        assert_eq!(none.pop(&mut out), 0);
        assert_eq!(none.front(), b"");
    }

    #[test]
    fn a_ring_over_outside_storage_stays_inside_it() {
        let mut storage = [0u8; 4];
        let mut ring = Ring::new();
        let mut out = RingBuf {
            ring: &mut ring,
            storage: &mut storage,
        };
        assert_eq!(Output::push(&mut out, b"abcdef"), 4);
        assert_eq!(out.room(), 0);
        assert!(!Output::is_empty(&out));
        ring.consume(4, 3);
        assert_eq!(ring.push(&mut storage, b"xyz"), 3);
        assert_eq!(ring.front(&storage), b"d");
        // Handed smaller storage than it was filled in, it neither panics nor leaves it.
        let mut small = [0u8; 2];
        assert_eq!(ring.push(&mut small, b"q"), 0);
        assert!(ring.front(&small).len() <= 2);
        let mut got = [0u8; 8];
        assert!(ring.pop(&small, &mut got) <= 2);
    }

    #[test]
    fn echo_takes_what_fits() {
        let mut out = ByteRing::<3>::new();
        assert_eq!(Echo.feed(b"hello", &mut out), 3);
        assert_eq!(out.front(), b"hel");
    }
}
