//! Every example payload of the Beetle::Server seed, verbatim: the `/job` and `/exec` bodies,
//! the `/jobs` example saved job by job and read back, the JobExec example's shape and
//! values, the `/tasks` example; and the gRPC-code → HTTP-status table, row by row.

mod common;

use axum::response::IntoResponse;
use common::beetle::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use taskhive::http::error::ApiError;
use tonic::Code;

/// The JobExec answered by `/exec`.
const SEED_JOBEXEC: &str = r#"{
"id": "77f2d06c-be37-4bdc-98ad-02fed5acd892",
"name": "charges_local_2",
"host": "http://localhost:3001",
"t_start": "2019-02-19 21:36:47.430+00:00",
"elapsed_usec": 750782,
"params": {
"sc_mc": "mc"
},
"error_400_on_threshold_exceeded": false,
"tasks": {
"BCaaS::ChargeTask": {
"host": "http://localhost:3001",
"weight": 1,
"sleep_min_msec": 500,
"sleep_max_msec": 1000,
"threshold_avg_usec": 0,
"threshold_max_usec": 0,
"n_task": 2,
"n_success": 2,
"n_fail": 0,
"min_usec": 448,
"max_usec": 1980,
"avg_usec": 1214,
"tot_usec": 2428,
"executions": [
{
"id": "80b65420-2902-4e44-8676-6e2f620003af",
"swarm_id": 1,
"t_start": "2019-02-19 21:36:47.430+00:00",
"elapsed_usec": 1980,
"request_context": "buyer_id: 5066112c-b321-40a0-ac61-a7868b1921ee",
"is_success": true
},
{
"id": "5f173b79-9e11-423b-9fe9-e204c669af3a",
"swarm_id": 1,
"t_start": "2019-02-19 21:36:48.180+00:00",
"elapsed_usec": 448,
"request_context": "buyer_id: 45672a98-281a-4ee3-857a-89ea27fa2dcb",
"is_success": true
}
],
"threshold_avg_exceeded": false,
"threshold_max_exceeded": false
}
},
"run_for_sec": 0,
"run_n": 2,
"n_swarm": 1,
"threshold_exceeded": false
}"#;

/// The `/tasks` answer.
const SEED_TASKS: &str = r#"{
"tasks": [
"BCaaS::ChargeTask",
"BCaaS::PreAuthTask"
]
}"#;

/// The `/jobs` answer.
const SEED_JOBS: &str = r#"{
"charges_local_2": {
"name": "charges_local_2",
"host": "http://localhost:3001",
"tasks": [
{
"task_class": "BCaaS::ChargeTask",
"weight": 1,
"sleep_min_msec": 500,
"sleep_max_msec": 1000,
"threshold_avg_usec": 0,
"threshold_max_usec": 0,
"host": "http://localhost:3001"
}
],
"run_for_sec": 0,
"run_n": 2,
"n_swarm": 1
},
"charges_staging": {
"name": "charges_staging",
"tasks": [
{
"task_class": "BCaaS::ChargeTask",
"weight": 1,
"sleep_min_msec": 500,
"sleep_max_msec": 1000,
"threshold_avg_usec": 0,
"threshold_max_usec": 0,
"host": "https://app.bcaas-staging.msts.com/api/v20180807"
}
],
"run_for_sec": 10,
"run_n": 0,
"n_swarm": 1
},
"charges_5_staging": {
"name": "charges_5_staging",
"tasks": [
{
"task_class": "BCaaS::ChargeTask",
"weight": 1,
"sleep_min_msec": 0,
"sleep_max_msec": 0,
"threshold_avg_usec": 0,
"threshold_max_usec": 0,
"host": "https://app.bcaas-staging.msts.com/api/v20180807"
}
],
"run_for_sec": 10,
"run_n": 0,
"n_swarm": 5
}
}"#;

/// Workers for the seed's task classes: `BCaaS::ChargeTask` answers with a request_context
/// naming the params; `BCaaS::PreAuthTask` is only registered.
async fn seed_workers(s: &TestServer) -> (tokio::task::JoinHandle<()>, Worker) {
    let serve = charge_worker(s).await;
    let preauth = s.worker(&["BCaaS::PreAuthTask"], 1).await;
    (serve, preauth)
}

/// Fields whose values differ from run to run: only their type is compared.
const VARYING: [&str; 8] = [
    "id",
    "t_start",
    "elapsed_usec",
    "min_usec",
    "max_usec",
    "avg_usec",
    "tot_usec",
    "request_context",
];

/// `got` has the seed's keys first, in the seed's order, and the seed's values except where
/// they vary between runs (there the same JSON type).
fn like_seed(path: &str, seed: &Value, got: &Value) {
    match (seed, got) {
        (Value::Object(s), Value::Object(g)) => {
            let sk: Vec<&String> = s.keys().collect();
            let gk: Vec<&String> = g.keys().take(sk.len()).collect();
            assert_eq!(sk, gk, "{path}: keys");
            for (k, sv) in s {
                let p = format!("{path}.{k}");
                if VARYING.contains(&k.as_str()) {
                    let same_type =
                        (sv.is_string() && g[k].is_string()) || (sv.is_u64() && g[k].is_u64());
                    assert!(same_type, "{p}: {sv} vs {}", g[k]);
                } else {
                    like_seed(&p, sv, &g[k]);
                }
            }
        }
        (Value::Array(s), Value::Array(g)) => {
            assert_eq!(s.len(), g.len(), "{path}: length");
            for (i, (a, b)) in s.iter().zip(g).enumerate() {
                like_seed(&format!("{path}[{i}]"), a, b);
            }
        }
        _ => assert_eq!(seed, got, "{path}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_jobs_example_saves_and_reads_back_verbatim() {
    let s = TestServer::start().await;
    let _workers = seed_workers(&s).await;
    let c = reqwest::Client::new();
    let base = s.url();
    // /tasks: the seed's classes (with the built-in ones after them or before, in any order).
    let v: Value = c
        .get(format!("{base}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seed_tasks: Value = serde_json::from_str(SEED_TASKS).unwrap();
    assert_eq!(keys(&v), keys(&seed_tasks));
    for t in seed_tasks["tasks"].as_array().unwrap() {
        assert!(v["tasks"].as_array().unwrap().contains(t), "{t} in {v}");
    }
    // Each job of the /jobs example, saved as it is printed there.
    let seed_jobs: Value = serde_json::from_str(SEED_JOBS).unwrap();
    for (name, j) in seed_jobs.as_object().unwrap() {
        let r = c
            .post(format!("{base}/job"))
            .body(serde_json::to_string_pretty(j).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status(), r.text().await.unwrap()),
            (StatusCode::OK, "Job saved".to_string()),
            "{name}"
        );
    }
    // /jobs answers the example: same jobs, same keys in the same order, same values.
    let got: Value = serde_json::from_str(
        &c.get(format!("{base}/jobs"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let mut names = keys(&got);
    let mut want = keys(&seed_jobs);
    names.sort();
    want.sort();
    assert_eq!(names, want);
    for (name, j) in seed_jobs.as_object().unwrap() {
        assert_eq!(
            serde_json::to_string(&got[name]).unwrap(),
            serde_json::to_string(j).unwrap(),
            "{name}"
        );
    }

    // The JobExec example came from running charges_local_2 with the seed's params.
    let exec = SEED_EXEC.replace("charges_local", "charges_local_2");
    let r = c
        .post(format!("{base}/exec"))
        .body(exec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let seed_exec: Value = serde_json::from_str(SEED_JOBEXEC).unwrap();
    // Our worker's request_context differs in content, not in type.
    like_seed("JobExec", &seed_exec, &report);
    // Execution ids are distinct UUIDs, times in Beetle's format.
    let ex = report["tasks"]["BCaaS::ChargeTask"]["executions"]
        .as_array()
        .unwrap();
    assert_ne!(ex[0]["id"], ex[1]["id"]);
    for e in ex {
        assert_eq!(e["id"].as_str().unwrap().len(), 36);
        let t = e["t_start"].as_str().unwrap();
        assert!(
            t.len() == 29 && t.ends_with("+00:00") && &t[19..20] == ".",
            "{t}"
        );
    }
    assert_eq!(report["id"].as_str().unwrap().len(), 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_job_and_exec_bodies_verbatim() {
    let s = TestServer::start().await;
    let _workers = seed_workers(&s).await;
    let c = reqwest::Client::new();
    let base = s.url();
    let r = c
        .post(format!("{base}/job"))
        .body(SEED_JOB)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.text().await.unwrap()),
        (StatusCode::OK, "Job saved".to_string())
    );
    // The seed's run: 10 s of one swarm, sleeping 500..1000 ms between tasks.
    let r = c
        .post(format!("{base}/exec"))
        .body(SEED_EXEC)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let seed_exec: Value = serde_json::from_str(SEED_JOBEXEC).unwrap();
    assert_eq!(&keys(&report)[..12], &keys(&seed_exec)[..]);
    assert_eq!(report["name"], "charges_local");
    assert_eq!(report["params"], json!({"sc_mc": "mc"}));
    assert_eq!(
        (&report["run_for_sec"], &report["run_n"], &report["n_swarm"]),
        (&json!(10), &json!(0), &json!(1))
    );
    let elapsed = report["elapsed_usec"].as_u64().unwrap();
    assert!((10_000_000..13_000_000).contains(&elapsed), "{elapsed}");
    let t = &report["tasks"]["BCaaS::ChargeTask"];
    let seed_t = &seed_exec["tasks"]["BCaaS::ChargeTask"];
    assert_eq!(&keys(t)[..16], &keys(seed_t)[..]);
    let n = t["n_task"].as_u64().unwrap();
    // One task, then a 0.5..1 s sleep, for 10 s (the lower bound leaves room for slow commits).
    assert!((8..=21).contains(&n), "n_task {n}");
    assert_eq!(t["n_success"].as_u64(), Some(n));
    assert_eq!(t["executions"].as_array().unwrap().len() as u64, n);
    assert_eq!(t["executions"][0]["request_context"], "sc_mc: mc");
}

#[tokio::test]
async fn error_mapping_table_row_by_row() {
    let rows = [
        (Code::InvalidArgument, 400, "INVALID_ARGUMENT"),
        (Code::OutOfRange, 400, "OUT_OF_RANGE"),
        (Code::NotFound, 404, "NOT_FOUND"),
        (Code::AlreadyExists, 409, "ALREADY_EXISTS"),
        (Code::Aborted, 409, "ABORTED"),
        (Code::FailedPrecondition, 412, "FAILED_PRECONDITION"),
        (Code::Unauthenticated, 401, "UNAUTHENTICATED"),
        (Code::PermissionDenied, 403, "PERMISSION_DENIED"),
        (Code::ResourceExhausted, 429, "RESOURCE_EXHAUSTED"),
        (Code::Unimplemented, 501, "UNIMPLEMENTED"),
        (Code::Unavailable, 503, "UNAVAILABLE"),
        (Code::DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
        (Code::Cancelled, 499, "CANCELLED"),
        (Code::Unknown, 500, "UNKNOWN"),
        (Code::Internal, 500, "INTERNAL"),
        (Code::DataLoss, 500, "DATA_LOSS"),
    ];
    for (code, status, name) in rows {
        let resp = ApiError::new(code, "task: must not be empty").into_response();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{name}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            // Issue 22: the reason beside the code (the code's name when there is no finer one).
            json!({"code": name, "reason": name, "message": "task: must not be empty"}),
            "{name}"
        );
    }
}
