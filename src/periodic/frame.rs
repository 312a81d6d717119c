//! Periodic wire frames: magic, big-endian length, CRC32 of the payload, payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Frames sent to the server start with this.
pub const MAGIC_REQ: &[u8; 4] = b"\0REQ";
/// Frames sent by the server start with this.
pub const MAGIC_RES: &[u8; 4] = b"\0RES";
/// Magic, length and CRC.
pub const HEADER_LEN: usize = 12;

/// Why a frame could not be read; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first four bytes were not `\0REQ`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// The announced length is over the limit.
    #[error("frame of {0} bytes is over the limit of {1}")]
    TooLong(usize, usize),
    /// The payload does not match its CRC32.
    #[error("crc mismatch: header {header:08x}, payload {actual:08x}")]
    BadCrc {
        /// The CRC the header announced.
        header: u32,
        /// The CRC of the payload received.
        actual: u32,
    },
}

/// Takes one whole request frame off the front of `buf`, if one is there.
pub fn decode(buf: &mut BytesMut, max_len: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let magic: [u8; 4] = buf[..4].try_into().expect("4 bytes");
    if &magic != MAGIC_REQ {
        return Err(FrameError::BadMagic(magic));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if len > max_len {
        return Err(FrameError::TooLong(len, max_len));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let header = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len).freeze();
    let actual = crc32fast::hash(&payload);
    if actual != header {
        return Err(FrameError::BadCrc { header, actual });
    }
    Ok(Some(payload))
}

/// A response frame around `payload`.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(MAGIC_RES);
    out.put_u32(payload.len() as u32);
    out.put_u32(crc32fast::hash(payload));
    out.put_slice(payload);
    out.freeze()
}

/// A request frame around `payload` (clients; used by tests).
pub fn encode_request(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::from(&encode(payload)[..]);
    out[..4].copy_from_slice(MAGIC_REQ);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_reads() {
        let f = encode_request(b"\x00\x00\x00\x01\x09");
        let mut buf = BytesMut::from(&f[..7]);
        assert_eq!(decode(&mut buf, 1024), Ok(None));
        buf.extend_from_slice(&f[7..]);
        buf.extend_from_slice(&f);
        assert_eq!(
            decode(&mut buf, 1024).unwrap().unwrap(),
            &b"\x00\x00\x00\x01\x09"[..]
        );
        assert!(decode(&mut buf, 1024).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_bad_frames() {
        let mut bad = BytesMut::from(&b"\0RES\0\0\0\0\0\0\0\0"[..]);
        assert!(matches!(decode(&mut bad, 10), Err(FrameError::BadMagic(_))));
        let mut long = BytesMut::from(&encode_request(&[0u8; 64])[..]);
        assert_eq!(decode(&mut long, 10), Err(FrameError::TooLong(64, 10)));
        let mut crc = BytesMut::from(&encode_request(b"abc")[..]);
        let n = crc.len();
        crc[n - 1] ^= 1;
        assert!(matches!(
            decode(&mut crc, 10),
            Err(FrameError::BadCrc { .. })
        ));
    }
}
