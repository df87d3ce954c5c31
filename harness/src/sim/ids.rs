//! Message identity and seeded randomness.
//!
//! The broker assigns its own message ids, but a publish confirm can be lost (a timeout, a
//! crash), and then only the payload says which message a delivery, a dead letter or a drop
//! is. So the harness gives every message its own id, `producer << 32 | sequence`, and writes
//! it at the front of the payload with a poison flag; the rest of the payload is padding up
//! to the configured size.
//!
//! Every random draw in a run comes from a [`ChaCha8Rng`] seeded from the run seed, the
//! drawing process and its incarnation (a restarted host draws a fresh stream), so no two
//! actors share a stream and no stream depends on scheduling.

use bytes::{BufMut, Bytes, BytesMut};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Bytes at the front of every payload: a magic byte, the id (big-endian) and the flags.
pub const HEADER_BYTES: usize = 10;

const MAGIC: u8 = 0x6d;
const POISON: u8 = 1;

/// Marks "no message" in compact records.
pub const NO_MSG: u64 = u64::MAX;

/// A harness message id from the producer's index and its sequence number.
pub fn message_id(producer: u32, seq: u32) -> u64 {
    (u64::from(producer) << 32) | u64::from(seq)
}

/// The producer index of a harness message id.
pub fn producer_of(id: u64) -> u32 {
    (id >> 32) as u32
}

/// The length of a payload asked to be `size` bytes: never less than its header.
pub fn payload_len(size: usize) -> usize {
    size.max(HEADER_BYTES)
}

/// A payload of [`payload_len`]`(size)` bytes naming message `id`.
pub fn encode_payload(id: u64, poison: bool, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(payload_len(size));
    put_payload(&mut b, id, poison, size);
    b.freeze()
}

/// The payload [`encode_payload`] makes, written into the empty `buf` and cut from it, which
/// keeps its spare room for the next: the payloads cut from one buffer share its allocation,
/// where each of its own was an allocation per message. The first cut makes the buffer shared,
/// which allocates once, so this is for several payloads.
pub fn cut_payload(buf: &mut BytesMut, id: u64, poison: bool, size: usize) -> Bytes {
    debug_assert!(buf.is_empty(), "the buffer holds nothing but the payload");
    put_payload(buf, id, poison, size);
    buf.split().freeze()
}

fn put_payload(buf: &mut BytesMut, id: u64, poison: bool, size: usize) {
    let end = buf.len() + payload_len(size);
    buf.put_u8(MAGIC);
    buf.put_u64(id);
    buf.put_u8(if poison { POISON } else { 0 });
    buf.resize(end, 0);
}

/// The id and poison flag a payload carries, or `None` for a payload the harness did not make.
pub fn decode_payload(payload: &[u8]) -> Option<(u64, bool)> {
    let header = payload.get(..HEADER_BYTES)?;
    if header[0] != MAGIC || header[9] & !POISON != 0 {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[1..9]);
    Some((u64::from_be_bytes(id), header[9] & POISON != 0))
}

/// The id and poison flag a payload carries, or ([`NO_MSG`], not poison) for a payload the
/// harness did not make.
pub fn message_of(payload: &[u8]) -> (u64, bool) {
    decode_payload(payload).unwrap_or((NO_MSG, false))
}

/// The key string of key number `k`.
pub fn key_name(k: u32) -> String {
    format!("k{k}")
}

/// The key number of a key string the harness made, or `None`.
pub fn key_number(key: &str) -> Option<u32> {
    key.strip_prefix('k')?.parse().ok()
}

/// The random stream of `process` in its `incarnation` (0 for the first start) of a run.
pub fn rng(seed: u64, process: u16, incarnation: u32) -> ChaCha8Rng {
    stream(seed, process, incarnation, 0)
}

/// Stream number `n` of `process` in its `incarnation`: the actor's own draws are stream 0;
/// the clients it makes (their reconnect jitter) take streams from 1 on.
pub fn stream(seed: u64, process: u16, incarnation: u32, n: u32) -> ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..10].copy_from_slice(&process.to_le_bytes());
    s[12..16].copy_from_slice(&incarnation.to_le_bytes());
    s[24..28].copy_from_slice(&n.to_le_bytes());
    // A fixed tag keeps these streams apart from any other use of the same seed.
    s[16..24].copy_from_slice(b"mqsimact");
    ChaCha8Rng::from_seed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_strangers_are_refused() {
        let id = message_id(3, 41);
        let p = encode_payload(id, true, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(decode_payload(&p), Some((id, true)));
        assert_eq!(producer_of(id), 3);
        assert_eq!(
            decode_payload(&encode_payload(7, false, 0)),
            Some((7, false))
        );
        assert_eq!(decode_payload(b"hello world!"), None);
        assert_eq!(decode_payload(&p[..5]), None);
        assert_eq!(key_number(&key_name(12)), Some(12));
        assert_eq!(key_number("x"), None);
    }

    /// Payloads cut from one buffer are the very bytes each would have on its own, whatever
    /// the buffer's room, and they share its allocation.
    #[test]
    fn payloads_cut_from_one_buffer_are_those_made_alone() {
        for (size, room) in [(32, 3 * 32), (64, 10), (0, 0)] {
            let mut buf = BytesMut::with_capacity(room);
            let cut: Vec<Bytes> = (0..3)
                .map(|i| cut_payload(&mut buf, message_id(1, i), i == 1, size))
                .collect();
            for (i, p) in (0..3).zip(&cut) {
                assert_eq!(p, &encode_payload(message_id(1, i), i == 1, size));
            }
            assert!(buf.is_empty());
        }
        let mut buf = BytesMut::with_capacity(2 * 32);
        let a = cut_payload(&mut buf, 1, false, 32);
        let b = cut_payload(&mut buf, 2, false, 32);
        assert_eq!(a.as_ptr().wrapping_add(32), b.as_ptr(), "one allocation");
    }
}
