//! Beetle job and Exec request documents: arbitrary text through the validation `/job` and
//! `/exec` use; errors name a field, never panic, and a saved job's canonical JSON (what
//! `/jobs` shows and the store keeps) parses back to the same job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskhive::load::exec_request::RawExec;
use taskhive::load::job::{parse_job_json, Rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let known: Vec<String> = ["http.get", "http.post", "remote.echo"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let is_http = |c: &str| c.starts_with("http.");
    let rules = Rules {
        known: &known,
        is_http: &is_http,
        max_swarms: 100,
    };
    match parse_job_json(text, &rules) {
        Ok(job) => {
            let again = parse_job_json(&job.to_json(), &rules).expect("canonical JSON parses");
            assert_eq!(again, job);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = RawExec::from_json(text).and_then(RawExec::check);
});
