//! The wire protocol between clients and the broker server.
//!
//! A connection is a sequence of frames in each direction. A frame is a 4-byte big-endian body
//! length followed by the body, a postcard-encoded [`ClientFrame`] or [`ServerFrame`]. The first
//! frame a client sends is [`ClientFrame::Hello`] with its protocol version; the server answers
//! [`ServerFrame::Welcome`] or, for a version it does not speak, [`ServerFrame::Goodbye`] and
//! closes. Requests carry a client-chosen id and responses echo it, so a client can keep many
//! requests in flight on one connection (pipelining) and several frames may share one write:
//! in the simulator the cost is per write and per tick, not per byte.
//!
//! Bodies are bounded by [`MAX_FRAME_BYTES`]. A frame that is oversize or does not decode is a
//! protocol error: the peer closes that connection and nothing else is affected.

use bytes::{Buf, Bytes, BytesMut};
use mqsim_broker::{BrokerError, Command, Reply};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt};

mod fast;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame body accepted: the largest payload the broker allows (16 MiB) plus room
/// for the command around it.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Bytes of the length prefix.
const PREFIX_BYTES: usize = 4;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame on a connection.
    Hello {
        /// The protocol version the client speaks.
        version: u32,
        /// A name for logs and histories.
        client: String,
    },
    /// One command; `id` is echoed in the response.
    Request { id: u64, command: Command },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to a compatible `Hello`: the server's version and the broker's incarnation.
    Welcome { version: u32, epoch: u32 },
    /// The answer to the request with the same id.
    Response {
        id: u64,
        result: Result<Reply, BrokerError>,
    },
    /// The server is closing this connection, and why.
    Goodbye { reason: String },
}

/// A frame type: postcard-encoded, with a hand-written path (`wire/fast.rs`) that writes and
/// reads the same bytes faster for the frames that carry nearly all of a busy run's traffic.
pub trait Frame: Serialize + DeserializeOwned {
    /// Appends the frame's body if the fast path handles it; returns false, having written
    /// nothing, otherwise.
    fn encode_fast(&self, out: &mut Vec<u8>) -> bool;
    /// The frame in `body` if the fast path handles it and is certain of it; `None` leaves the
    /// body to postcard.
    fn decode_fast(body: &Bytes) -> Option<Self>;
}

impl Frame for ClientFrame {
    fn encode_fast(&self, out: &mut Vec<u8>) -> bool {
        fast::encode_client(self, out)
    }

    fn decode_fast(body: &Bytes) -> Option<Self> {
        fast::decode_client(body)
    }
}

impl Frame for ServerFrame {
    fn encode_fast(&self, out: &mut Vec<u8>) -> bool {
        fast::encode_server(self, out)
    }

    fn decode_fast(body: &Bytes) -> Option<Self> {
        fast::decode_server(body)
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix announced more than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversize { len: usize, max: usize },
    /// The body did not decode as a frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends one frame (length prefix and body) to `out`.
pub fn encode<T: Frame>(frame: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    // Serialised straight after a placeholder prefix; a frame that fails to serialise or is
    // too large is cut off again, which leaves `out` exactly as it was.
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    if !frame.encode_fast(out)
        && let Err(e) = postcard::to_io(frame, &mut *out)
    {
        out.truncate(start);
        return Err(WireError::Malformed(e.to_string()));
    }
    let len = out.len() - start - PREFIX_BYTES;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(WireError::Oversize {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    // The bound above keeps the length far below u32::MAX.
    out[start..start + PREFIX_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Takes one complete frame off the front of `buf`, or returns `Ok(None)` when `buf` does not
/// hold a whole frame yet. An oversize length is refused as soon as the prefix is read, before
/// any of the body is buffered.
pub fn decode<T: Frame>(buf: &mut BytesMut) -> Result<Option<T>, WireError> {
    let Some(prefix) = buf.get(..PREFIX_BYTES) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::Oversize {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    if buf.len() < PREFIX_BYTES + len {
        return Ok(None);
    }
    buf.advance(PREFIX_BYTES);
    let body = buf.split_to(len).freeze();
    if let Some(frame) = T::decode_fast(&body) {
        return Ok(Some(frame));
    }
    let (frame, rest) =
        postcard::take_from_bytes::<T>(&body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes after the frame",
            rest.len()
        )));
    }
    Ok(Some(frame))
}

/// Reads frames from a byte stream, buffering partial ones.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Bytes of buffer a read gets when the buffer needs room.
    const READ_CHUNK: usize = 64 * 1024;

    /// Room below which the buffer is given [`Self::READ_CHUNK`] more before a read. Asking
    /// for a whole chunk before every read, as the reader once did, allocated a fresh chunk
    /// after every frame whose payloads a caller still held (a client's deliveries are slices
    /// of the buffer), where a buffer with room can go on filling the same allocation.
    const MIN_ROOM: usize = 4 * 1024;

    /// Wraps a stream.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(Self::READ_CHUNK),
        }
    }

    /// The next frame; `Ok(None)` when the stream ended cleanly between frames.
    pub async fn next<T: Frame>(&mut self) -> Result<Option<T>, WireError> {
        loop {
            if let Some(frame) = decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            self.make_room();
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::Truncated)
                };
            }
        }
    }

    /// Reads whatever the stream has ready without waiting, up to `limit` buffered bytes, so
    /// that requests which arrived while the server was busy are answered as one batch.
    /// Returns the error or end of stream it met, if any, for the next [`Self::next`] to see.
    pub fn fill_available(&mut self, limit: usize) {
        use futures_util::FutureExt as _;
        while self.buf.len() < limit {
            self.make_room();
            // `read_buf` is cancel-safe: what it read is in the buffer even if it is dropped.
            match self.inner.read_buf(&mut self.buf).now_or_never() {
                Some(Ok(n)) if n > 0 => {}
                // Pending, the end of the stream, or an error: `next` meets the last two.
                _ => break,
            }
        }
    }

    /// Gives the buffer room for a read, only when it has little left.
    fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() < Self::MIN_ROOM {
            self.buf.reserve(Self::READ_CHUNK);
        }
    }

    /// A frame already buffered, without reading: lets a server answer every request that
    /// arrived in one read before it writes, so that the answers share a write too.
    pub fn try_next<T: Frame>(&mut self) -> Result<Option<T>, WireError> {
        decode(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqsim_broker::{ConsumerId, PublishRequest};
    use proptest::prelude::*;

    fn publish(n: u64) -> ClientFrame {
        ClientFrame::Request {
            id: n,
            command: Command::Publish {
                destination: "q".into(),
                request: PublishRequest::new(vec![7u8; 10]).with_key("k"),
            },
        }
    }

    #[test]
    fn frames_round_trip_and_share_a_buffer() {
        let mut out = Vec::new();
        for n in 0..3 {
            encode(&publish(n), &mut out).unwrap();
        }
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "c".into(),
        };
        encode(&hello, &mut out).unwrap();
        let mut buf = BytesMut::from(&out[..]);
        for n in 0..3 {
            assert_eq!(decode::<ClientFrame>(&mut buf).unwrap(), Some(publish(n)));
        }
        assert_eq!(decode::<ClientFrame>(&mut buf).unwrap(), Some(hello));
        assert_eq!(decode::<ClientFrame>(&mut buf).unwrap(), None);
        let receive = Command::Receive {
            destination: "t".into(),
            group: Some("g".into()),
            consumer: ConsumerId(3),
            max_messages: 5,
            visibility_timeout_ms: Some(10),
            ack_mode: mqsim_broker::AckMode::Explicit,
        };
        let mut out = Vec::new();
        encode(
            &ClientFrame::Request {
                id: 9,
                command: receive.clone(),
            },
            &mut out,
        )
        .unwrap();
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(
            decode::<ClientFrame>(&mut buf).unwrap(),
            Some(ClientFrame::Request {
                id: 9,
                command: receive
            })
        );
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut out = Vec::new();
        encode(&publish(1), &mut out).unwrap();
        for cut in 0..out.len() {
            let mut buf = BytesMut::from(&out[..cut]);
            assert_eq!(
                decode::<ClientFrame>(&mut buf).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversize_and_malformed_frames_are_errors() {
        let mut buf = BytesMut::from(&((MAX_FRAME_BYTES as u32 + 1).to_be_bytes())[..]);
        assert!(matches!(
            decode::<ClientFrame>(&mut buf),
            Err(WireError::Oversize { .. })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 0xff, 0xff][..]);
        assert!(matches!(
            decode::<ClientFrame>(&mut buf),
            Err(WireError::Malformed(_))
        ));
        let big = ClientFrame::Request {
            id: 0,
            command: Command::Publish {
                destination: "q".into(),
                request: PublishRequest::new(vec![0u8; MAX_FRAME_BYTES + 1]),
            },
        };
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            encode(&big, &mut out),
            Err(WireError::Oversize { .. })
        ));
        assert_eq!(
            out,
            vec![1, 2, 3],
            "a refused frame leaves the buffer as it was"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_cut_mid_frame_is_truncated_and_a_clean_end_is_none() {
        let mut out = Vec::new();
        encode(&publish(1), &mut out).unwrap();
        let mut r = FrameReader::new(&out[..]);
        assert_eq!(r.next::<ClientFrame>().await.unwrap(), Some(publish(1)));
        assert!(r.next::<ClientFrame>().await.unwrap().is_none());
        let mut r = FrameReader::new(&out[..out.len() - 1]);
        assert!(matches!(
            r.next::<ClientFrame>().await,
            Err(WireError::Truncated)
        ));
    }

    /// A stream that hands over one chunk per read, as a network delivers one segment at a
    /// time.
    struct Segments(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Segments {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                buf.put_slice(&chunk);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A delivery frame with one message whose payload is `n` repeated.
    fn delivered(n: u8) -> ServerFrame {
        ServerFrame::Response {
            id: u64::from(n),
            result: Ok(Reply::Delivered {
                deliveries: vec![mqsim_broker::Delivery {
                    message_id: mqsim_broker::MessageId(u64::from(n)),
                    partition: 0,
                    offset: u64::from(n),
                    key: None,
                    payload: Bytes::from(vec![n; 16]),
                    delivery_count: 1,
                    published_at: mqsim_broker::Time(0),
                    receipt: None,
                }],
            }),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn held_payloads_do_not_make_every_read_allocate_a_new_buffer() {
        let segments = (1..=3u8)
            .map(|n| {
                let mut out = Vec::new();
                encode(&delivered(n), &mut out).unwrap();
                out
            })
            .collect();
        let mut r = FrameReader::new(Segments(segments));
        let mut payloads = Vec::new();
        for n in 1..=3u8 {
            let Some(ServerFrame::Response {
                result: Ok(Reply::Delivered { deliveries }),
                ..
            }) = r.next::<ServerFrame>().await.unwrap()
            else {
                panic!("frame {n} is not a delivery");
            };
            // Held, as a consumer holds its deliveries while it processes them.
            payloads.push(deliveries[0].payload.clone());
        }
        assert_eq!(payloads[2][..], [3u8; 16]);
        // The frames are tens of bytes each: all three payloads are in the first buffer,
        // where a fresh buffer for each read would put them a chunk apart.
        let first = payloads[0].as_ptr() as usize;
        for p in &payloads[1..] {
            let distance = (p.as_ptr() as usize).abs_diff(first);
            assert!(distance < 1024, "a payload {distance} bytes from the first");
        }
    }

    proptest! {
        /// The decoder is total: arbitrary bytes give frames, "need more", or an error, never a
        /// panic, and it never claims more bytes than it was given.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..bytes.len() + 1 {
                match decode::<ClientFrame>(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = decode::<ServerFrame>(&mut buf);
        }

        /// Corrupting one byte of a valid frame never panics the decoder.
        #[test]
        fn corrupted_frames_never_panic(n in any::<u64>(), at in any::<usize>(), byte in any::<u8>()) {
            let mut out = Vec::new();
            encode(&publish(n), &mut out).unwrap();
            let i = at % out.len();
            out[i] = byte;
            let mut buf = BytesMut::from(&out[..]);
            let _ = decode::<ClientFrame>(&mut buf);
        }
    }
}
