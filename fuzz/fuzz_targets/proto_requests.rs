//! Arbitrary bytes decoded as each request message (the first byte picks the type) and
//! handled by the real service: errors carry a message, nothing panics.
#![no_main]

#[path = "common/requests.rs"]
mod requests;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&kind, rest)) = data.split_first() {
        requests::handle(kind, requests::Wire::Proto, rest);
    }
});
