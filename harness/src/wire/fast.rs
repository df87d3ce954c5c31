//! Hand-written encoding and decoding of the frames that carry nearly all of a busy run's
//! traffic: publish batches, receives and ack batches, and their successful answers.
//!
//! Serde's postcard path costs a call per field, a `Vec` write per varint, and an allocation
//! per payload on decode. These functions write and read exactly postcard's bytes for those
//! frames (the tests compare them with postcard's on generated frames), so the wire format does
//! not change. Anything else, including an answer that holds an error, goes through postcard.
//! A decoder returns `None` for anything it is not certain of, and postcard then decodes the
//! frame, so that whatever these accept, postcard would have read the same way.
//!
//! Postcard's format, as used here: unsigned integers (and enum variant and sequence lengths)
//! are LEB128 varints; `bool` and `Option`'s tag are one byte (0 or 1); strings and byte strings
//! are a varint length and the bytes; structs are their fields in order; `Result` is a variant
//! (`Ok` = 0) and its value.

use bytes::Bytes;
use mqsim_broker::{
    Command, Confirm, ConsumerId, Delivery, DestId, GroupId, MessageId, PublishRequest, Receipt,
    Reply, Time,
};

use super::{ClientFrame, ServerFrame};

// Variant indexes, in declaration order, as postcard numbers them.
const CLIENT_REQUEST: u64 = 1;
const COMMAND_PUBLISH_BATCH: u64 = 1;
const COMMAND_RECEIVE: u64 = 2;
const COMMAND_ACK_BATCH: u64 = 4;
const SERVER_RESPONSE: u64 = 1;
const RESULT_OK: u64 = 0;
const REPLY_PUBLISHED_BATCH: u64 = 1;
const REPLY_DELIVERED: u64 = 2;
const REPLY_ACKED: u64 = 3;
const ACK_MODE_AUTO: u64 = 0;
const ACK_MODE_EXPLICIT: u64 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
    }
}

fn put_receipt(out: &mut Vec<u8>, r: &Receipt) {
    put_varint(out, u64::from(r.epoch));
    put_varint(out, u64::from(r.destination.0));
    put_varint(out, u64::from(r.group.0));
    put_varint(out, u64::from(r.partition));
    put_varint(out, r.offset);
    put_varint(out, r.token);
}

fn put_confirm(out: &mut Vec<u8>, c: &Confirm) {
    put_varint(out, c.message_id.0);
    put_varint(out, u64::from(c.partition));
    put_varint(out, c.offset);
    out.push(u8::from(c.duplicate));
}

/// Appends the body of `frame` if it is one of the frames handled here; returns false, having
/// written nothing, otherwise.
pub(super) fn encode_client(frame: &ClientFrame, out: &mut Vec<u8>) -> bool {
    let ClientFrame::Request { id, command } = frame else {
        return false;
    };
    match command {
        Command::PublishBatch {
            destination,
            requests,
        } => {
            put_varint(out, CLIENT_REQUEST);
            put_varint(out, *id);
            put_varint(out, COMMAND_PUBLISH_BATCH);
            put_bytes(out, destination.as_bytes());
            put_varint(out, requests.len() as u64);
            for r in requests {
                put_opt_str(out, r.key.as_deref());
                put_bytes(out, &r.payload);
                put_opt_u64(out, r.delay_ms);
                put_opt_u64(out, r.ttl_ms);
                put_opt_str(out, r.dedup_id.as_deref());
            }
        }
        Command::Receive {
            destination,
            group,
            consumer,
            max_messages,
            visibility_timeout_ms,
            ack_mode,
        } => {
            put_varint(out, CLIENT_REQUEST);
            put_varint(out, *id);
            put_varint(out, COMMAND_RECEIVE);
            put_bytes(out, destination.as_bytes());
            put_opt_str(out, group.as_deref());
            put_varint(out, consumer.0);
            put_varint(out, u64::from(*max_messages));
            put_opt_u64(out, *visibility_timeout_ms);
            put_varint(
                out,
                match ack_mode {
                    mqsim_broker::AckMode::Auto => ACK_MODE_AUTO,
                    mqsim_broker::AckMode::Explicit => ACK_MODE_EXPLICIT,
                },
            );
        }
        Command::AckBatch { receipts } => {
            put_varint(out, CLIENT_REQUEST);
            put_varint(out, *id);
            put_varint(out, COMMAND_ACK_BATCH);
            put_varint(out, receipts.len() as u64);
            for r in receipts {
                put_receipt(out, r);
            }
        }
        _ => return false,
    }
    true
}

/// As [`encode_client`], for the server's successful answers to the same commands.
pub(super) fn encode_server(frame: &ServerFrame, out: &mut Vec<u8>) -> bool {
    let ServerFrame::Response {
        id,
        result: Ok(reply),
    } = frame
    else {
        return false;
    };
    match reply {
        Reply::PublishedBatch { results } if results.iter().all(Result::is_ok) => {
            put_varint(out, SERVER_RESPONSE);
            put_varint(out, *id);
            put_varint(out, RESULT_OK);
            put_varint(out, REPLY_PUBLISHED_BATCH);
            put_varint(out, results.len() as u64);
            for c in results.iter().flatten() {
                put_varint(out, RESULT_OK);
                put_confirm(out, c);
            }
        }
        Reply::Delivered { deliveries } => {
            put_varint(out, SERVER_RESPONSE);
            put_varint(out, *id);
            put_varint(out, RESULT_OK);
            put_varint(out, REPLY_DELIVERED);
            put_varint(out, deliveries.len() as u64);
            for d in deliveries {
                put_varint(out, d.message_id.0);
                put_varint(out, u64::from(d.partition));
                put_varint(out, d.offset);
                put_opt_str(out, d.key.as_deref());
                put_bytes(out, &d.payload);
                put_varint(out, u64::from(d.delivery_count));
                put_varint(out, d.published_at.0);
                match &d.receipt {
                    None => out.push(0),
                    Some(r) => {
                        out.push(1);
                        put_receipt(out, r);
                    }
                }
            }
        }
        Reply::Acked { results } if results.iter().all(Result::is_ok) => {
            put_varint(out, SERVER_RESPONSE);
            put_varint(out, *id);
            put_varint(out, RESULT_OK);
            put_varint(out, REPLY_ACKED);
            put_varint(out, results.len() as u64);
            out.resize(out.len() + results.len(), RESULT_OK as u8);
        }
        _ => return false,
    }
    true
}

/// Reads postcard's encoding from a frame body; every method returns `None` where postcard
/// would fail or where this reader is unsure, and the caller then leaves the frame to postcard.
struct Reader<'a> {
    body: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.body.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// A varint of at most `max_bytes` bytes whose last byte is at most `max_last`: postcard's
    /// limits for the integer type read (10 and 1 for `u64`, 5 and 15 for `u32`).
    fn varint(&mut self, max_bytes: u32, max_last: u8) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            if i == max_bytes - 1 && b > max_last {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u64(&mut self) -> Option<u64> {
        self.varint(10, 0x01)
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint(5, 0x0f)?).ok()
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn raw(&mut self) -> Option<&[u8]> {
        let n = self.len()?;
        let end = self.at.checked_add(n)?;
        let s = self.body.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    /// A byte string as a slice of the frame: no copy and no allocation, but it keeps the
    /// frame's buffer alive as long as it lives.
    fn shared_bytes(&mut self) -> Option<Bytes> {
        let n = self.len()?;
        let end = self.at.checked_add(n)?;
        if end > self.body.len() {
            return None;
        }
        let b = self.body.slice(self.at..end);
        self.at = end;
        Some(b)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.raw()?).ok().map(str::to_owned)
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }

    /// A sequence's length, refused when the rest of the body cannot hold that many elements of
    /// at least `min_bytes` each, so that a corrupt length never sizes an allocation.
    fn seq_len(&mut self, min_bytes: usize) -> Option<usize> {
        let n = self.len()?;
        (n.checked_mul(min_bytes)? <= self.body.len() - self.at).then_some(n)
    }

    fn receipt(&mut self) -> Option<Receipt> {
        Some(Receipt {
            epoch: self.u32()?,
            destination: DestId(self.u32()?),
            group: GroupId(self.u32()?),
            partition: self.u32()?,
            offset: self.u64()?,
            token: self.u64()?,
        })
    }

    /// An enum's variant index, read as postcard reads it: a `u32` varint.
    fn variant(&mut self) -> Option<u64> {
        self.varint(5, 0x0f)
    }

    fn expect_variant(&mut self, v: u64) -> Option<()> {
        (self.variant()? == v).then_some(())
    }

    fn finished(&self) -> Option<()> {
        (self.at == self.body.len()).then_some(())
    }
}

/// Decodes a request frame's body if it is one of those handled here. Payloads are copied:
/// the broker stores them, and a slice would keep the whole read buffer alive with them.
pub(super) fn decode_client(body: &Bytes) -> Option<ClientFrame> {
    let mut r = Reader { body, at: 0 };
    r.expect_variant(CLIENT_REQUEST)?;
    let id = r.u64()?;
    let command = match r.variant()? {
        COMMAND_PUBLISH_BATCH => {
            let destination = r.string()?;
            // A request is at least 5 bytes: four option tags and a payload length.
            let n = r.seq_len(5)?;
            let mut requests = Vec::with_capacity(n);
            for _ in 0..n {
                let key = r.opt(Reader::string)?;
                let payload = Bytes::copy_from_slice(r.raw()?);
                let delay_ms = r.opt(Reader::u64)?;
                let ttl_ms = r.opt(Reader::u64)?;
                let dedup_id = r.opt(Reader::string)?;
                requests.push(PublishRequest {
                    key,
                    payload,
                    delay_ms,
                    ttl_ms,
                    dedup_id,
                });
            }
            Command::PublishBatch {
                destination,
                requests,
            }
        }
        COMMAND_RECEIVE => Command::Receive {
            destination: r.string()?,
            group: r.opt(Reader::string)?,
            consumer: ConsumerId(r.u64()?),
            max_messages: r.u32()?,
            visibility_timeout_ms: r.opt(Reader::u64)?,
            ack_mode: match r.variant()? {
                ACK_MODE_AUTO => mqsim_broker::AckMode::Auto,
                ACK_MODE_EXPLICIT => mqsim_broker::AckMode::Explicit,
                _ => return None,
            },
        },
        COMMAND_ACK_BATCH => {
            // A receipt is at least 6 bytes, one per field.
            let n = r.seq_len(6)?;
            let mut receipts = Vec::with_capacity(n);
            for _ in 0..n {
                receipts.push(r.receipt()?);
            }
            Command::AckBatch { receipts }
        }
        _ => return None,
    };
    r.finished()?;
    Some(ClientFrame::Request { id, command })
}

/// Decodes a response frame's body if it is one of those handled here. Delivered payloads are
/// slices of the frame: a consumer holds them only while it handles its batch.
pub(super) fn decode_server(body: &Bytes) -> Option<ServerFrame> {
    let mut r = Reader { body, at: 0 };
    r.expect_variant(SERVER_RESPONSE)?;
    let id = r.u64()?;
    r.expect_variant(RESULT_OK)?;
    let reply = match r.variant()? {
        REPLY_PUBLISHED_BATCH => {
            // A result is at least 5 bytes: its variant and a confirm's four fields.
            let n = r.seq_len(5)?;
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                r.expect_variant(RESULT_OK)?;
                results.push(Ok(Confirm {
                    message_id: MessageId(r.u64()?),
                    partition: r.u32()?,
                    offset: r.u64()?,
                    duplicate: r.bool()?,
                }));
            }
            Reply::PublishedBatch { results }
        }
        REPLY_DELIVERED => {
            // A delivery is at least 8 bytes, one per field.
            let n = r.seq_len(8)?;
            let mut deliveries = Vec::with_capacity(n);
            for _ in 0..n {
                deliveries.push(Delivery {
                    message_id: MessageId(r.u64()?),
                    partition: r.u32()?,
                    offset: r.u64()?,
                    key: r.opt(Reader::string)?,
                    payload: r.shared_bytes()?,
                    delivery_count: r.u32()?,
                    published_at: Time(r.u64()?),
                    receipt: r.opt(Reader::receipt)?,
                });
            }
            Reply::Delivered { deliveries }
        }
        REPLY_ACKED => {
            let n = r.seq_len(1)?;
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                r.expect_variant(RESULT_OK)?;
                results.push(Ok(()));
            }
            Reply::Acked { results }
        }
        _ => return None,
    };
    r.finished()?;
    Some(ServerFrame::Response {
        id,
        result: Ok(reply),
    })
}

#[cfg(test)]
mod tests {
    use mqsim_broker::{AckMode, BrokerError};
    use proptest::prelude::*;

    use super::*;

    fn opt_string() -> impl Strategy<Value = Option<String>> {
        prop::option::of("[a-z\u{e9}\u{1F600}]{0,12}")
    }

    fn receipt() -> impl Strategy<Value = Receipt> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(epoch, d, g, partition, offset, token)| Receipt {
                epoch,
                destination: DestId(d),
                group: GroupId(g),
                partition,
                offset,
                token,
            })
    }

    fn request() -> impl Strategy<Value = PublishRequest> {
        (
            opt_string(),
            prop::collection::vec(any::<u8>(), 0..200),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            opt_string(),
        )
            .prop_map(
                |(key, payload, delay_ms, ttl_ms, dedup_id)| PublishRequest {
                    key,
                    payload: payload.into(),
                    delay_ms,
                    ttl_ms,
                    dedup_id,
                },
            )
    }

    fn client_frame() -> impl Strategy<Value = ClientFrame> {
        let command = prop_oneof![
            ("[a-z]{0,8}", prop::collection::vec(request(), 0..6)).prop_map(
                |(destination, requests)| Command::PublishBatch {
                    destination,
                    requests
                }
            ),
            (
                "[a-z]{0,8}",
                opt_string(),
                any::<u64>(),
                any::<u32>(),
                any::<Option<u64>>(),
                any::<bool>()
            )
                .prop_map(|(destination, group, c, max_messages, vis, auto)| {
                    Command::Receive {
                        destination,
                        group,
                        consumer: ConsumerId(c),
                        max_messages,
                        visibility_timeout_ms: vis,
                        ack_mode: if auto {
                            AckMode::Auto
                        } else {
                            AckMode::Explicit
                        },
                    }
                }),
            prop::collection::vec(receipt(), 0..6)
                .prop_map(|receipts| Command::AckBatch { receipts }),
        ];
        (any::<u64>(), command).prop_map(|(id, command)| ClientFrame::Request { id, command })
    }

    fn confirm() -> impl Strategy<Value = Confirm> {
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<bool>()).prop_map(
            |(m, partition, offset, duplicate)| Confirm {
                message_id: MessageId(m),
                partition,
                offset,
                duplicate,
            },
        )
    }

    fn delivery() -> impl Strategy<Value = Delivery> {
        (
            (any::<u64>(), any::<u32>(), any::<u64>(), opt_string()),
            prop::collection::vec(any::<u8>(), 0..200),
            (any::<u32>(), any::<u64>(), prop::option::of(receipt())),
        )
            .prop_map(
                |((m, partition, offset, key), payload, (delivery_count, at, receipt))| Delivery {
                    message_id: MessageId(m),
                    partition,
                    offset,
                    key,
                    payload: payload.into(),
                    delivery_count,
                    published_at: Time(at),
                    receipt,
                },
            )
    }

    fn server_frame() -> impl Strategy<Value = ServerFrame> {
        let reply = prop_oneof![
            prop::collection::vec(confirm(), 0..6).prop_map(|c| Reply::PublishedBatch {
                results: c.into_iter().map(Ok).collect()
            }),
            prop::collection::vec(delivery(), 0..6)
                .prop_map(|deliveries| Reply::Delivered { deliveries }),
            (0usize..6).prop_map(|n| Reply::Acked {
                results: vec![Ok(()); n]
            }),
        ];
        (any::<u64>(), reply).prop_map(|(id, reply)| ServerFrame::Response {
            id,
            result: Ok(reply),
        })
    }

    /// If the fast decoder accepts `bytes`, postcard reads the same frame from them.
    fn agrees_with_postcard<T: super::super::Frame + PartialEq + std::fmt::Debug>(
        bytes: &[u8],
    ) -> Result<(), TestCaseError> {
        let body = Bytes::copy_from_slice(bytes);
        if let Some(fast) = T::decode_fast(&body) {
            let slow: T = postcard::from_bytes(bytes)
                .map_err(|e| TestCaseError::fail(format!("postcard refused {fast:?}: {e}")))?;
            prop_assert_eq!(fast, slow);
            // The whole body was the frame: postcard would have refused trailing bytes.
            prop_assert!(
                postcard::take_from_bytes::<T>(bytes).is_ok_and(|(_, rest)| rest.is_empty())
            );
        }
        Ok(())
    }

    proptest! {
        /// The fast path writes postcard's bytes and reads them back.
        #[test]
        fn client_frames_are_postcard(frame in client_frame()) {
            let mut out = Vec::new();
            prop_assert!(encode_client(&frame, &mut out));
            prop_assert_eq!(&out, &postcard::to_stdvec(&frame).unwrap());
            prop_assert_eq!(decode_client(&Bytes::from(out)), Some(frame));
        }

        #[test]
        fn server_frames_are_postcard(frame in server_frame()) {
            let mut out = Vec::new();
            prop_assert!(encode_server(&frame, &mut out));
            prop_assert_eq!(&out, &postcard::to_stdvec(&frame).unwrap());
            prop_assert_eq!(decode_server(&Bytes::from(out)), Some(frame));
        }

        /// A damaged frame is either refused by the fast path or read as postcard reads it.
        #[test]
        fn damaged_frames_decode_as_postcard_would(
            client in client_frame(),
            server in server_frame(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let mut c = postcard::to_stdvec(&client).unwrap();
            let mut s = postcard::to_stdvec(&server).unwrap();
            for &(at, byte) in &edits {
                let i = at % c.len();
                c[i] = byte;
                let i = at % s.len();
                s[i] = byte;
            }
            agrees_with_postcard::<ClientFrame>(&c)?;
            agrees_with_postcard::<ServerFrame>(&s)?;
            agrees_with_postcard::<ClientFrame>(&c[..cut % (c.len() + 1)])?;
            agrees_with_postcard::<ServerFrame>(&s[..cut % (s.len() + 1)])?;
            c.push(0);
            agrees_with_postcard::<ClientFrame>(&c)?;
        }

        /// Arbitrary bytes behind a valid start of a hot frame.
        #[test]
        fn arbitrary_bodies_decode_as_postcard_would(
            head in prop::sample::select(vec![vec![1u8, 7, 1], vec![1, 7, 2], vec![1, 7, 4], vec![1, 7, 0, 1], vec![1, 7, 0, 2], vec![1, 7, 0, 3]]),
            tail in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes: Vec<u8> = head.into_iter().chain(tail).collect();
            agrees_with_postcard::<ClientFrame>(&bytes)?;
            agrees_with_postcard::<ServerFrame>(&bytes)?;
        }
    }

    #[test]
    fn other_frames_are_left_to_postcard() {
        let mut out = Vec::new();
        let failed = ServerFrame::Response {
            id: 1,
            result: Ok(Reply::Acked {
                results: vec![Ok(()), Err(BrokerError::StaleReceipt)],
            }),
        };
        assert!(!encode_server(&failed, &mut out));
        let refused = ServerFrame::Response {
            id: 1,
            result: Err(BrokerError::StaleReceipt),
        };
        assert!(!encode_server(&refused, &mut out));
        let hello = ClientFrame::Hello {
            version: 1,
            client: "c".into(),
        };
        assert!(!encode_client(&hello, &mut out));
        assert!(
            out.is_empty(),
            "nothing is written when the fast path declines"
        );
        let body = Bytes::from(postcard::to_stdvec(&failed).unwrap());
        assert_eq!(decode_server(&body), None);
    }
}
