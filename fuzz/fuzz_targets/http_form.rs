//! Periodic's curl API form: arbitrary urlencoded bodies (and path funcs) through the same
//! parsing and checks as `POST /` and `POST /{func}`; errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskhive::config::Limits;
use taskhive::http::periodic_api::{form_action, parse_urlencoded, FormAction};

fuzz_target!(|data: &[u8]| {
    // First byte: whether the path names a func (and how long it is).
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cut = (sel as usize % 8).min(rest.len());
    let path_func = (sel & 0x80 != 0).then(|| String::from_utf8_lossy(&rest[..cut]).into_owned());
    let Ok(form) = parse_urlencoded(&rest[cut..]) else {
        return;
    };
    match form_action(path_func, &form) {
        Ok(FormAction::Submit(req)) => {
            let (task, name) = (req.task.clone(), req.name.clone());
            if let Ok(spec) = req.validate(&Limits::default().submit(), 1_700_000_000_000, false) {
                assert_eq!((spec.task, spec.name), (task, name));
            }
        }
        Ok(FormAction::Remove { func, name }) => assert!(!func.is_empty() && !name.is_empty()),
        Err(e) => assert!(!e.is_empty()),
    }
});
