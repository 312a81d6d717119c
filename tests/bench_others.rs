//! `taskhive bench --addr`: the server the bench drives is its own load, not "other
//! processes'": a run against a `taskhive serve` child on an otherwise quiet machine must not
//! report that child's CPU as others' (before it was counted, such a run reported about one
//! core of others and told the user to run again on a quiet machine).

mod common;

use common::child::{cli_ok, spawn_server};

#[tokio::test]
async fn the_server_at_addr_is_not_counted_as_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = spawn_server(&dir.path().join("data"), &["--min-free-disk", "0"]).await;
    let json = dir.path().join("bench.json");
    let addr = addr.to_string();
    let stdout = cli_ok(&[
        "bench",
        "--addr",
        &addr,
        "--scenarios",
        "submit",
        "--jobs",
        "20000",
        "--clients",
        "4",
        "--pipeline",
        "16",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results[0]["ops"], 20000, "{doc}");
    // The server took most of a core for the whole run (a debug build); counted as
    // another process's it shows as about 1.
    let others = doc["others_cpu_cores"]
        .as_f64()
        .expect("the run's figure of other processes' CPU");
    assert!(
        others < 0.5,
        "the driven server counted as others: {others:.2} cores"
    );
    assert!(stdout.contains("other processes: "), "{stdout}");
}
