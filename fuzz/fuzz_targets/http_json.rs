//! The HTTP face's JSON-RPC bodies: arbitrary bytes decoded as each request message's proto3
//! JSON (the first byte picks the type), as `POST /taskhive.v1.Scheduler/{Method}` does,
//! and handled by the real service: errors carry a message, nothing panics.
#![no_main]

#[path = "common/requests.rs"]
mod requests;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&kind, rest)) = data.split_first() {
        requests::handle(kind, requests::Wire::Json, rest);
    }
});
