//! Beetle::Server's endpoints over the HTTP face, with the seed's payloads verbatim and a
//! remote worker implementing its task class.

mod common;

use common::beetle::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_payloads_round_trip_through_job_jobs_and_exec() {
    let s = TestServer::start().await;
    let _w = charge_worker(&s).await;
    let c = reqwest::Client::new();
    let base = s.url();
    // /tasks lists the worker's class and the built-in one.
    let v: Value = c
        .get(format!("{base}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tasks: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tasks.contains(&"BCaaS::ChargeTask") && tasks.contains(&"http.get"),
        "{v}"
    );
    // /job with the seed's body, as a run_n job so the test is quick.
    let job = SEED_JOB.replace("\"run_for_sec\": 10", "\"run_for_sec\": 0,\n\"run_n\": 2");
    let r = c
        .post(format!("{base}/job"))
        .body(job)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "Job saved");
    // /jobs: keyed by name, keys in Beetle's order, host filled in on the task.
    let text = c
        .get(format!("{base}/jobs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jobs: Value = serde_json::from_str(&text).unwrap();
    let j = &jobs["charges_local"];
    assert_eq!(
        keys(j),
        ["name", "host", "tasks", "run_for_sec", "run_n", "n_swarm"]
    );
    assert_eq!(
        keys(&j["tasks"][0]),
        [
            "task_class",
            "weight",
            "sleep_min_msec",
            "sleep_max_msec",
            "threshold_avg_usec",
            "threshold_max_usec",
            "host"
        ]
    );
    assert_eq!(j["tasks"][0]["host"], json!("http://localhost:3001"));
    assert_eq!(
        (j["run_n"].as_u64(), j["n_swarm"].as_u64()),
        (Some(2), Some(1))
    );
    // /exec with the seed's body: the JobExec, every seed field, in order.
    let r = c
        .post(format!("{base}/exec"))
        .body(SEED_EXEC)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let top = keys(&report);
    assert_eq!(
        &top[..12],
        [
            "id",
            "name",
            "host",
            "t_start",
            "elapsed_usec",
            "params",
            "error_400_on_threshold_exceeded",
            "tasks",
            "run_for_sec",
            "run_n",
            "n_swarm",
            "threshold_exceeded"
        ]
    );
    assert_eq!(report["params"], json!({"sc_mc": "mc"}));
    let t = &report["tasks"]["BCaaS::ChargeTask"];
    assert_eq!(
        (
            t["n_task"].as_u64(),
            t["n_success"].as_u64(),
            t["n_fail"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );
    let ex = &t["executions"][0];
    assert_eq!(
        keys(ex),
        [
            "id",
            "swarm_id",
            "t_start",
            "elapsed_usec",
            "request_context",
            "is_success"
        ]
    );
    assert_eq!(ex["request_context"], json!("sc_mc: mc"));
    assert_eq!(ex["swarm_id"], json!(1));
    // /status: idle again, with the last execution.
    let st: Value = c
        .post(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["state"], json!("idle"), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_threshold_and_bad_input_codes() {
    let s = TestServer::start().await;
    let _w = charge_worker(&s).await;
    let c = reqwest::Client::new();
    let base = s.url();
    let long = SEED_JOB
        .replace("\"run_for_sec\": 10", "\"run_for_sec\": 2")
        .replace("charges_local", "long");
    assert_eq!(
        c.post(format!("{base}/job"))
            .body(long)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let running = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}/exec");
        async move { c.post(url).body(r#"{"name":"long"}"#).send().await.unwrap() }
    });
    // Wait until the first exec is running, then a second is refused with 409.
    within(10, async {
        loop {
            let st: Value = c
                .get(format!("{base}/status"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if st["state"] == json!("running") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let r = c
        .post(format!("{base}/exec"))
        .body(r#"{"name":"long"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], json!("ABORTED"));
    assert_eq!(within(20, running).await.unwrap().status(), StatusCode::OK);

    // A threshold of 1 µs is exceeded: 400 with the JobExec when asked for, 200 otherwise.
    let strict = r#"{"name":"strict","host":"http://127.0.0.1:9","run_n":1,"tasks":[{"task_class":"BCaaS::ChargeTask","threshold_max_usec":1}]}"#;
    let r = c
        .post(format!("{base}/job"))
        .body(strict)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = c
        .post(format!("{base}/exec"))
        .body(r#"{"name":"strict","error_400_on_threshold_exceeded":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["threshold_exceeded"], json!(true));
    assert_eq!(report["error_400_on_threshold_exceeded"], json!(true));
    let r = c
        .post(format!("{base}/exec"))
        .body(r#"{"name":"strict"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Bad input: clear JSON errors naming the field; nothing stored.
    for (path, body, field) in [
        ("job", "{not json", ""),
        (
            "job",
            r#"{"name":"x","run_n":1,"tasks":[{"task_class":"nope"}]}"#,
            "task_class",
        ),
        (
            "job",
            r#"{"name":"x","run_n":1,"tasks":[{"task_class":"http.get","weight":0}]}"#,
            "weight",
        ),
        ("exec", r#"{"name":"unknown-job"}"#, ""),
    ] {
        let r = c
            .post(format!("{base}/{path}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error(),
            "{path} {body}: {}",
            r.status()
        );
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    let jobs: Value = c
        .get(format!("{base}/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&jobs), ["long", "strict"]);
}
