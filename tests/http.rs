//! The HTTP face on the gRPC port: Periodic's curl API and bridge, JSON for every unary RPC,
//! error mapping, `/quit`, and gRPC and HTTP side by side under load.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use taskhive::pb;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, v)
}

#[tokio::test]
async fn periodic_curl_api_examples_verbatim() {
    let s = TestServer::start().await;
    let base = s.url();
    let c = http();
    // curl http://ip:port
    let r = c.get(&base).send().await.unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(json_of(r).await, (StatusCode::OK, json!({})));
    // curl -d func=[funcName] -d name=[jobName] -d args=[jobArgs] -d timeout=[timeout] -d sched_at=[schedAt] http://ip:port
    let later = now_ms() / 1000 + 3600;
    let r = c
        .post(&base)
        .form(&[
            ("func", "ls5"),
            ("name", "/tmp/"),
            ("args", "-l"),
            ("timeout", "30"),
            ("sched_at", &later.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    // curl -d name=[jobName] -d args=[jobArgs] -d timeout=[timeout] -d sched_at=[schedAt] http://ip:port/[funcName]
    let r = c
        .post(format!("{base}/ls5"))
        .form(&[
            ("name", "/var/"),
            ("args", ""),
            ("timeout", "10"),
            ("sched_at", &later.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    // The same job over gRPC, with the form's values.
    let mut g = s.client().await;
    let j = g
        .get_job(pb::JobRef {
            job_id: 0,
            task: "ls5".into(),
            name: "/tmp/".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (&j.args[..], j.timeout_ms, j.sched_at_ms),
        (&b"-l"[..], 30_000, later * 1000)
    );
    // curl http://ip:port/[funcName]
    let (st, v) = json_of(c.get(format!("{base}/ls5")).send().await.unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            &v["func_name"],
            &v["total_worker"],
            &v["total_job"],
            &v["processing"]
        ),
        (&json!("ls5"), &json!(0), &json!(2), &json!(0))
    );
    let (_, all) = json_of(c.get(&base).send().await.unwrap()).await;
    assert_eq!(all["ls5"], v);
    assert_eq!(
        json_of(c.get(format!("{base}/nope")).send().await.unwrap()).await,
        (StatusCode::OK, json!({}))
    );
    // curl -d name=[jobName] -d act=remove http://ip:port/[funcName]
    let r = c
        .post(format!("{base}/ls5"))
        .form(&[("name", "/tmp/"), ("act", "remove")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    // curl -d name=[jobName] -d func=[funcName] -d act=remove http://ip:port/[funcName]
    let r = c
        .post(format!("{base}/ls5"))
        .form(&[("name", "/var/"), ("func", "ls5"), ("act", "remove")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    let r = c
        .post(format!("{base}/ls5"))
        .form(&[("name", "/var/"), ("act", "remove")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"err": "Job ls5:/var/ not exists."})
        )
    );
    let r = c.post(&base).form(&[("func", "ls5")]).send().await.unwrap();
    assert_eq!(
        json_of(r).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"err": "job name or func is required"})
        )
    );
    // Multipart bodies work too.
    let form = reqwest::multipart::Form::new()
        .text("name", "mp")
        .text("args", "from multipart");
    let r = c
        .post(format!("{base}/ls5"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    let (_, v) = json_of(c.get(format!("{base}/ls5")).send().await.unwrap()).await;
    assert_eq!(v["total_job"], json!(1));
    // curl -X DELETE http://ip:port/[funcName]
    let r = c.delete(format!("{base}/ls5")).send().await.unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::OK, json!({"msg": "SUCCESS"}))
    );
    assert_eq!(
        json_of(c.get(&base).send().await.unwrap()).await.1,
        json!({})
    );
    let r = c.delete(&base).send().await.unwrap();
    assert_eq!(
        json_of(r).await,
        (StatusCode::BAD_REQUEST, json!({"err": "func is required"}))
    );
    // A func named like another route is reachable under /sched/.
    let r = c
        .post(format!("{base}/sched/metrics"))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.0, StatusCode::OK);
    let (_, v) = json_of(c.get(format!("{base}/sched/metrics")).send().await.unwrap()).await;
    assert_eq!(v["total_job"], json!(1));
}

#[tokio::test]
async fn periodic_bridge_routes() {
    let s = TestServer::start().await;
    let base = s.url();
    let c = http();
    let r = c
        .post(format!("{base}/periodic/submit/br/j1/?timeout=5"))
        .body("work")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let st = c
        .get(format!("{base}/periodic/status/"))
        .send()
        .await
        .unwrap();
    assert_eq!(st.text().await.unwrap().split(',').next(), Some("br"));
    let r = c
        .post(format!("{base}/periodic/run/none/x/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let mut w = s.worker(&["br"], 1).await;
    let j = w.next_job().await;
    assert_eq!((&j.args[..], j.timeout_ms), (&b"work"[..], 5_000));
    w.done(j.lease_id, b"").await;
    let run = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}/periodic/run/br/j2/");
        async move { c.post(url).body("21").send().await.unwrap() }
    });
    let j = w.next_job().await;
    w.done(j.lease_id, b"42").await;
    let r = within(10, run).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "42");
    let r = c
        .post(format!(
            "{base}/periodic/submit/br/j3/?sched_at={}",
            now_ms() / 1000 + 600
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .post(format!("{base}/periodic/remove/br/j3/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .post(format!("{base}/periodic/remove/br/j3/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    drop(w);
    let dropped = within(10, async {
        loop {
            let r = c
                .post(format!("{base}/periodic/drop/br/"))
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::NO_CONTENT {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    dropped.await;
}

#[tokio::test]
async fn json_calls_reach_the_same_service_as_grpc() {
    let s = TestServer::start().await;
    let c = http();
    let url = |m: &str| format!("{}/taskhive.v1.Scheduler/{m}", s.url());
    let r = c
        .post(url("SubmitJob"))
        .json(&json!({"task": "j", "name": "n", "args": "aGk=", "priority": 3}))
        .send()
        .await
        .unwrap();
    let (st, v) = json_of(r).await;
    assert_eq!(st, StatusCode::OK);
    let id: u64 = v["jobId"].as_str().unwrap().parse().unwrap();
    let mut g = s.client().await;
    let j = g
        .get_job(pb::JobRef {
            job_id: id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((&j.args[..], j.priority), (&b"hi"[..], 3));
    let (st, v) = json_of(
        c.post(url("GetJob"))
            .json(&json!({"task": "j", "name": "n"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["state"], json!("JOB_STATE_PENDING"));
    let (st, v) = json_of(c.post(url("Status")).send().await.unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["tasks"][0]["task"], json!("j"));

    // Error mapping, row by row.
    let rows: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "SubmitJob",
            json!({"task": "", "name": "n"}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "GetJob",
            json!({"jobId": "999"}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "RunJob",
            json!({"task": "nobody", "name": "n"}),
            StatusCode::PRECONDITION_FAILED,
            "FAILED_PRECONDITION",
        ),
        (
            "ReportResult",
            json!({"leaseId": "77", "outcome": {"done": {}}}),
            StatusCode::PRECONDITION_FAILED,
            "FAILED_PRECONDITION",
        ),
        (
            "SetConfig",
            json!({"key": "nope", "value": "1"}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "SubmitJob",
            json!({"task": 5}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "NoSuchMethod",
            json!({}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        // A method's path with more after it names no method.
        (
            "SubmitJob/more",
            json!({"task": "hr", "name": "x"}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "Work",
            json!({}),
            StatusCode::NOT_IMPLEMENTED,
            "UNIMPLEMENTED",
        ),
    ];
    for (method, body, status, code) in rows {
        let (st, v) = json_of(c.post(url(method)).json(&body).send().await.unwrap()).await;
        assert_eq!(
            (st, v["code"].as_str().unwrap()),
            (status, code),
            "{method} {body}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty());
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
    let (st, v) = json_of(
        c.post(url("SubmitJob"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );
    assert!(v["message"].as_str().unwrap().starts_with("body:"));
    let (st, v) = json_of(c.get(url("SubmitJob")).send().await.unwrap()).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    let (st, v) = json_of(c.get(format!("{}/a/b/c", s.url())).send().await.unwrap()).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    // Over the size limit reads the same on the direct path and through the router (which
    // takes a percent-encoded path).
    for method in ["SubmitJob", "Submit%4Aob"] {
        let big = vec![b'x'; 2 << 20];
        let (st, v) = json_of(c.post(url(method)).body(big).send().await.unwrap()).await;
        assert_eq!(
            (st, &v["code"], &v["message"]),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!("PAYLOAD_TOO_LARGE"),
                &json!("body: over the size limit")
            ),
            "{method}"
        );
    }
    // Nothing was stored by the failures.
    let (_, v) = json_of(c.post(url("Status")).send().await.unwrap()).await;
    assert_eq!(v["totals"]["pending"], json!("1"));
    // A percent-encoded method name is decoded, as the router's path extractor does: the
    // job lands and reads back.
    for method in ["Submit%4Aob", "GetJob"] {
        let body = json!({"task": "hr", "name": "pct"});
        let (st, v) = json_of(c.post(url(method)).json(&body).send().await.unwrap()).await;
        assert_eq!(st, StatusCode::OK, "{method}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_on_one_port_under_mixed_load() {
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for k in 0..10 {
        let c = http();
        let url = s.url();
        let mut g = s.client().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let r = c
                    .post(format!("{url}/taskhive.v1.Scheduler/SubmitJob"))
                    .json(&json!({"task": "mix", "name": format!("h{k}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let r = c.get(format!("{url}/mix")).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                g.submit_job(job("mix", &format!("g{k}-{i}")))
                    .await
                    .unwrap();
                g.status(pb::StatusRequest::default()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(60, t).await.unwrap();
    }
    let mut g = s.client().await;
    assert_eq!(task_status(&mut g, "mix").await.pending, 1000);
}

#[tokio::test]
async fn quit_drains_and_stops_the_server() {
    let s = TestServer::start().await;
    let mut g = s.client().await;
    g.submit_job(job("q", "keep")).await.unwrap();
    let mut w = s.worker(&["q"], 1).await;
    let _held = w.next_job().await;
    let r = http()
        .post(format!("{}/quit", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let dir = s.wait_stopped().await;
    // The held job went back to pending, nothing lost, and no attempt counted against it.
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut g = s.client().await;
    assert_eq!(task_status(&mut g, "q").await.pending, 1);
    let j = g
        .get_job(pb::JobRef {
            job_id: 0,
            task: "q".into(),
            name: "keep".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.attempts, 0);
}

#[tokio::test]
async fn metrics_parse_and_move_as_jobs_flow() {
    let s = TestServer::start().await;
    let scrape = || async {
        let text = http()
            .get(format!("{}/metrics", s.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).expect("prometheus text")
    };
    let value = |sc: &prometheus_parse::Scrape, name: &str, task: &str| -> f64 {
        sc.samples
            .iter()
            .find(|x| x.metric == name && x.labels.get("task") == Some(task))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or(0.0)
    };
    let before = scrape().await;
    assert!(before
        .samples
        .iter()
        .any(|x| x.metric == "process_resident_memory_bytes"));
    let mut g = s.client().await;
    for i in 0..3 {
        g.submit_job(job("m", &format!("{i}"))).await.unwrap();
    }
    let mut w = s.worker(&["m"], 1).await;
    let j = w.next_job().await;
    w.done(j.lease_id, b"").await;
    let j = w.next_job().await;
    w.fail(j.lease_id, "x").await;
    let after = scrape().await;
    assert_eq!(value(&after, "taskhive_jobs_submitted_total", "m"), 3.0);
    assert_eq!(value(&after, "taskhive_jobs_done_total", "m"), 1.0);
    assert_eq!(value(&after, "taskhive_jobs_failed_total", "m"), 1.0);
    assert_eq!(value(&after, "taskhive_jobs_retried_total", "m"), 1.0);
    assert_eq!(value(&after, "taskhive_task_workers", "m"), 1.0);
    assert!(after
        .samples
        .iter()
        .any(|x| x.metric == "taskhive_dispatch_wait_seconds_count"
            && x.labels.get("task") == Some("m")));
    let running = after
        .samples
        .iter()
        .find(|x| {
            x.metric == "taskhive_jobs"
                && x.labels.get("task") == Some("m")
                && x.labels.get("state") == Some("running")
        })
        .unwrap();
    assert!(matches!(running.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
}

#[tokio::test]
async fn submit_jobs_over_json() {
    let s = TestServer::start().await;
    let c = http();
    let url = format!("{}/taskhive.v1.Scheduler/SubmitJobs", s.url());
    let (st, v) = json_of(
        c.post(&url)
            .json(&json!({"jobs": [{"task": "jb", "name": "a"}, {"task": "jb", "name": "b"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    let mut g = s.client().await;
    let st = g
        .status(pb::StatusRequest { task: "jb".into() })
        .await
        .unwrap()
        .into_inner()
        .totals
        .unwrap();
    assert_eq!(st.pending, 2);
    // A bad job: 400 naming it, and none of the batch is submitted.
    let (st, v) = json_of(
        c.post(&url)
            .json(&json!({"jobs": [{"task": "jb", "name": "c"}, {"task": "jb"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );
    assert!(v["message"].as_str().unwrap().starts_with("jobs: [1].name"));
    let err = g
        .get_job(pb::JobRef {
            task: "jb".into(),
            name: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn json_errors_carry_the_reason() {
    let s = TestServer::start().await;
    let c = http();
    let url = |m: &str| format!("{}/taskhive.v1.Scheduler/{m}", s.url());
    let call = |m: &str, body: Value| {
        let req = c.post(url(m)).json(&body);
        async move { json_of(req.send().await.unwrap()).await }
    };
    // No worker.
    let (st, v) = call("RunJob", json!({"task": "hr", "name": "n"})).await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    assert_eq!(v["code"], json!("FAILED_PRECONDITION"));
    assert_eq!(v["reason"], json!("NO_WORKER"));
    assert_eq!(v["message"], json!("no worker for task hr"));
    // The keys come in the documented order.
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "reason", "message"]);

    // Stale lease: a result for a lease already reported.
    call("SubmitJob", json!({"task": "hr", "name": "m"})).await;
    let mut w = s.worker(&["hr"], 1).await;
    let j = w.next_job().await;
    w.done(j.lease_id, b"").await;
    let (st, v) = call(
        "ReportResult",
        json!({"leaseId": j.lease_id.to_string(), "outcome": {"done": {}}}),
    )
    .await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    assert_eq!(v["reason"], json!("STALE_LEASE"));

    // Workers present.
    let (st, v) = call("DropTask", json!({"task": "hr"})).await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    assert_eq!(v["reason"], json!("WORKERS_PRESENT"));

    // Not a scheduler refusal: the reason is the code's name.
    let (st, v) = call("Work", json!({})).await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(v["reason"], json!("UNIMPLEMENTED"));

    // The bridge's run names its reason in a header.
    let r = c
        .post(format!("{}/periodic/run/nobody/x/", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers()["taskhive-reason"], "NO_WORKER");
    drop(w);
}

#[tokio::test]
async fn json_numbers_come_as_numbers_or_strings_and_a_bad_one_is_named() {
    let s = TestServer::start().await;
    let c = http();
    let url = |m: &str| format!("{}/taskhive.v1.Scheduler/{m}", s.url());
    let call = |m: &str, body: &Value| {
        let req = c.post(url(m)).json(body);
        async move { json_of(req.send().await.unwrap()).await }
    };
    // A day from now: pending, not due.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 86_400_000;
    // The proto3 JSON mapping lets a 64-bit number come as a string; clients send both.
    for (name, sched, timeout, priority, attempts) in [
        ("numbers", json!(at), json!(7000), json!(-3), json!(4)),
        (
            "strings",
            json!(at.to_string()),
            json!("7000"),
            json!("-3"),
            json!("4"),
        ),
    ] {
        let body = json!({"task": "jn", "name": name, "schedAtMs": sched, "timeoutMs": timeout,
                          "priority": priority, "retry": {"maxAttempts": attempts}});
        let (st, v) = call("SubmitJob", &body).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        let (st, v) = call("GetJob", &json!({"task": "jn", "name": name})).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(
            (&v["schedAtMs"], &v["timeoutMs"], &v["priority"]),
            (&json!(at.to_string()), &json!("7000"), &json!(-3)),
            "{name}: {v}"
        );
    }
    for (body, field, why) in [
        (json!({"schedAtMs": "soon"}), "schedAtMs", "invalid digit"),
        (json!({"schedAtMs": 1.5}), "schedAtMs", "floating point"),
        (
            json!({"priority": 2_147_483_648_i64}),
            "priority",
            "2147483648",
        ),
        (json!({"priority": true}), "priority", "a number"),
        (
            json!({"retry": {"maxAttempts": -1}}),
            "retry.maxAttempts",
            "-1",
        ),
        (
            json!({"retry": {"backoffBaseMs": "1e3"}}),
            "retry.backoffBaseMs",
            "invalid digit",
        ),
    ] {
        let mut job = json!({"task": "jn", "name": "bad"});
        job.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let (st, v) = call("SubmitJob", &job).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{job}: {v}");
        assert_eq!(v["code"], json!("INVALID_ARGUMENT"), "{job}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("body: {field}: ")) && msg.contains(why),
            "{job}: {msg:?} should name {field} and say {why:?}"
        );
    }
    // A body that is not JSON, or has more after its value, names no field.
    for body in ["{", "{} {}"] {
        let (st, v) = json_of(
            c.post(url("SubmitJob"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.starts_with("body: ") && !msg.starts_with("body: ."),
            "{msg:?}"
        );
    }
    // Nothing refused was stored.
    let (st, _) = call("GetJob", &json!({"task": "jn", "name": "bad"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A client still sending a body the server has refused (413, over the size limit) reads the
/// refusal: the server drains what the client sends before it closes the socket (a close
/// with unread bytes would be a reset, and the client's write would fail before it read the
/// answer). The body is far larger than the kernel's socket buffers, so without the drain
/// the client's write is certain to fail. The same on both JSON paths (the direct one and the
/// router's, which takes a percent-encoded method name), for a body of declared length
/// (refused before it is read) and a chunked one (refused part-way, at the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_refused_body_reads_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    for method in ["SubmitJob", "Submit%4Aob"] {
        for (framing, body) in both_framings(32 << 20) {
            let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
            let head = format!(
                "POST /taskhive.v1.Scheduler/{method} HTTP/1.1\r\nhost: x\r\n\
                 content-type: application/json\r\n{framing}\r\n\r\n"
            );
            within(30, async {
                tcp.write_all(head.as_bytes()).await?;
                tcp.write_all(&body).await
            })
            .await
            .unwrap_or_else(|e| panic!("{method}, {framing}: the body could not be sent: {e}"));
            let mut answer = Vec::new();
            within(30, tcp.read_to_end(&mut answer))
                .await
                .unwrap_or_else(|e| {
                    panic!("{method}, {framing}: the answer could not be read: {e}")
                });
            assert_closing_413(&answer, &format!("{method}, {framing}"));
        }
    }
}

/// Reads one HTTP/1 answer (its head, and a body of the length it declares) off `tcp`,
/// lower-cased.
async fn read_answer(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                return String::from_utf8_lossy(&got).to_lowercase();
            }
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Writes `head` and `body` on a new connection to `addr` and reads the answer.
async fn raw_answer(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    within(10, async {
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(body).await.unwrap();
        read_answer(&mut tcp).await
    })
    .await
}

/// A body whose declared length is over the limit is refused before it is read, on every
/// HTTP path: a client that waits on `expect: 100-continue` gets the 413 instead of the go-ahead
/// and need not send the body at all (curl does this for bodies over 1 MiB).
#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let s = TestServer::start().await;
    for path in ["/taskhive.v1.Scheduler/SubmitJob", "/job", "/a/b/c"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            64 << 20
        );
        let answer = raw_answer(s.addr, &head, b"").await;
        assert!(
            answer.starts_with("http/1.1 413 ") && answer.contains("\r\nconnection: close\r\n"),
            "{path}: {answer}"
        );
    }
}

/// An HTTP/1 answer given before its request's body was read to the end (a 404 or 405 to an
/// upload) says `connection: close`: hyper closes such a connection after the answer, and a
/// client that put it back in its pool would lose its next request on it. An answer to a
/// body that was read keeps the connection, and the next request on it is answered.
#[tokio::test]
async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    // 1 MiB declared (under the limit), 64 KiB sent.
    let part = vec![b'x'; 64 << 10];
    for (path, status) in [("/a/b/c", "404"), ("/metrics", "405")] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            1 << 20
        );
        let answer = raw_answer(s.addr, &head, &part).await;
        assert!(
            answer.starts_with(&format!("http/1.1 {status} "))
                && answer.contains("\r\nconnection: close\r\n"),
            "{path}: {answer}"
        );
    }
    // A submit whose body was read: the connection stays, and carries a second request.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    for name in ["a", "b"] {
        let body = json!({"task": "kept", "name": name}).to_string();
        let req = format!(
            "POST /taskhive.v1.Scheduler/SubmitJob HTTP/1.1\r\nhost: x\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = within(10, async {
            tcp.write_all(req.as_bytes()).await.unwrap();
            read_answer(&mut tcp).await
        })
        .await;
        assert!(
            answer.starts_with("http/1.1 200 ") && !answer.contains("connection: close"),
            "{name}: {answer}"
        );
    }
}

/// Every answer but gRPC's carries `date`, over HTTP/1 and HTTP/2 alike; gRPC answers go
/// without it, as grpc-go's and grpc-java's do (hyper's is off on HTTP/2 for their sake).
#[tokio::test]
async fn answers_carry_a_date_except_grpc_ones() {
    let s = TestServer::start().await;
    // HTTP/1, from hyper.
    let r = http()
        .get(format!("{}/status", s.url()))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("date").is_some_and(is_http_date),
        "HTTP/1: {r:?}"
    );
    // HTTP/2 (prior knowledge): a page, a JSON call and a 404, from the port.
    for (method, path, body) in [
        ("GET", "/status", ""),
        (
            "POST",
            "/taskhive.v1.Scheduler/SubmitJob",
            r#"{"task":"d","name":"a"}"#,
        ),
        ("GET", "/a/b/c", ""),
    ] {
        let date = h2_answer_date(s.addr, method, path, body).await;
        assert!(
            date.as_ref().is_some_and(is_http_date),
            "HTTP/2 {method} {path}: {date:?}"
        );
    }
    // gRPC: a call served by hand, one served by tonic, and an error.
    let mut c = s.client().await;
    let r = c.submit_job(job("d", "b")).await.unwrap();
    assert!(r.metadata().get("date").is_none(), "SubmitJob: {r:?}");
    let r = c
        .status(pb::StatusRequest { task: "d".into() })
        .await
        .unwrap();
    assert!(r.metadata().get("date").is_none(), "Status: {r:?}");
    let e = c.submit_job(job("", "c")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.metadata().get("date").is_none(), "an error: {e:?}");
}
