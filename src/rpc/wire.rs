//! gRPC's length-prefixed message and its status trailers, for what reads and writes them
//! without tonic's codec: the unary calls the server serves by hand (`server::unary_calls`)
//! and the bench's hand-written clients (`cli::bench::{lean_grpc, pipelined_grpc}`). One
//! place, so that both ends frame and refuse alike, in tonic's words.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::{Code, Status};

/// The prefix before each message: a compressed flag and a 4-byte big-endian length.
pub(crate) const PREFIX: usize = 5;

/// Appends `msg` to `buf` behind its prefix (not compressed).
pub(crate) fn put(buf: &mut BytesMut, msg: &impl Message) {
    let len = msg.encoded_len();
    buf.reserve(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(buf)
        .expect("the buffer was reserved for the message");
}

/// The length a message's prefix at the start of `buf` declares, once the prefix is there.
pub(crate) fn declared_len(buf: &[u8]) -> Option<usize> {
    let p = buf.get(..PREFIX)?;
    Some(u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize)
}

/// The one uncompressed message `body` holds, without its prefix; what is not exactly that
/// is refused as tonic refuses it.
pub(crate) fn one(mut body: Bytes) -> Result<Bytes, Status> {
    let Some(len) = declared_len(&body) else {
        return Err(Status::internal(if body.is_empty() {
            "Missing request message."
        } else {
            "Unexpected EOF decoding stream."
        }));
    };
    if body[0] != 0 {
        return Err(Status::internal(
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
        ));
    }
    body.advance(PREFIX);
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(Status::internal("Unexpected EOF decoding stream.")),
        std::cmp::Ordering::Greater => Err(Status::internal(
            "a unary call carries one message; this one has more",
        )),
        std::cmp::Ordering::Equal => Ok(body),
    }
}

/// The status a call's trailers (or a trailers-only answer's headers) carry: `Ok(())` for
/// OK; the status, its message percent-decoded by tonic, for any other; an error when
/// there is none.
pub(crate) fn status(h: &http::HeaderMap) -> Result<(), Status> {
    match Status::from_header_map(h) {
        None => Err(Status::internal("trailers without grpc-status")),
        Some(s) if s.code() == Code::Ok => Ok(()),
        Some(s) => Err(s),
    }
}

/// Whether `h` carries a status: trailers, or the headers of a trailers-only answer.
pub(crate) fn has_status(h: &http::HeaderMap) -> bool {
    h.contains_key(Status::GRPC_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        put(&mut b, &Bytes::copy_from_slice(msg));
        b.freeze()
    }

    #[test]
    fn a_framed_message_reads_back_and_anything_else_is_refused() {
        let whole = framed(b"hello");
        assert_eq!(declared_len(&whole), Some(whole.len() - PREFIX));
        assert_eq!(
            Bytes::decode(one(whole.clone()).unwrap()).unwrap(),
            &b"hello"[..]
        );
        let refused = |b: Bytes| one(b).unwrap_err();
        assert_eq!(refused(Bytes::new()).message(), "Missing request message.");
        assert_eq!(refused(whole.slice(..4)).code(), Code::Internal);
        assert_eq!(
            refused(whole.slice(..whole.len() - 1)).code(),
            Code::Internal
        );
        let mut compressed = whole.to_vec();
        compressed[0] = 1;
        assert!(refused(compressed.into())
            .message()
            .contains("compressed-flag"));
        let two = [whole.clone(), whole].concat();
        assert!(refused(two.into()).message().contains("one message"));
    }

    #[test]
    fn status_reads_ok_errors_and_its_absence() {
        let mut h = http::HeaderMap::new();
        assert!(!has_status(&h));
        assert_eq!(status(&h).unwrap_err().code(), Code::Internal);
        h.insert("grpc-status", "0".parse().unwrap());
        assert!(has_status(&h));
        status(&h).unwrap();
        h.insert("grpc-status", "3".parse().unwrap());
        h.insert("grpc-message", "name%3A empty".parse().unwrap());
        let e = status(&h).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), "name: empty", "percent-decoded");
    }
}
