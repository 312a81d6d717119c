//! Arbitrary bytes through the Periodic frame and command decoders: errors, never panics,
//! and what decodes re-encodes to the same request.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use taskhive::periodic::{command, frame};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(payload)) = frame::decode(&mut buf, 1 << 20) {
        let _ = command::parse(&payload);
    }
    if let Ok((msgid, req)) = command::parse(data) {
        let again = command::encode_request(u32::from_be_bytes(msgid), &req);
        let (_, back) = command::parse(&again).expect("re-encoded request parses");
        assert_eq!(back, req);
    }
});
