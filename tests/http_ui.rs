//! The dashboard's server side (`/ui`, its embedded assets, `/ui/exec`'s event stream), the
//! load runner's series in `/metrics`, `POST /quit` ending a real `taskhive serve` process
//! with status 0, and gRPC and HTTP on one port under ~1,000 requests in flight at once.

mod common;

use std::collections::HashMap;

use common::child::spawn_server;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tonic::transport::Channel;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn ui_page_and_assets_are_served_from_the_binary() {
    let s = TestServer::start().await;
    let c = http();
    let page = c.get(format!("{}/ui", s.url())).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    // Every script and stylesheet the page names is served here (no CDN).
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let r = &part[..part.find('"').unwrap()];
            if !r.starts_with("data:") {
                refs.push(r.to_string());
            }
        }
    }
    assert_eq!(
        refs.len(),
        4,
        "uPlot js+css and the app's js+css, got {refs:?}"
    );
    for r in &refs {
        assert!(r.starts_with("/ui/"), "{r} is not served by taskhive");
        let resp = c.get(format!("{}{r}", s.url())).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{r}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let body = resp.text().await.unwrap();
        assert!(body.len() > 500, "{r} is {} bytes", body.len());
        let want = if r.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(ct.starts_with(want), "{r}: {ct}");
    }
    let js = c
        .get(format!("{}/ui/vendor/uPlot.iife.min.js", s.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.starts_with("/*! https://github.com/leeoniya/uPlot (v1.6.32) */"));
    // A task named `ui` is still reachable under the documented prefix.
    let r = c.get(format!("{}/sched/ui", s.url())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "{}");
}

/// Reads server-sent events from a streaming response.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut event = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
            let chunk = self.resp.chunk().await.unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn scrape(url: &str) -> prometheus_parse::Scrape {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("prometheus")
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(sc: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sc.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_exec_streams_progress_and_load_metrics_move() {
    let s = TestServer::start().await;
    let c = http();
    let url = s.url();
    let r = c
        .post(format!("{url}/job"))
        .json(&json!({
            "name": "self", "host": format!("{url}/status"), "run_for_sec": 2, "n_swarm": 2,
            "tasks": [{"task_class": "http.get", "sleep_min_msec": 1, "sleep_max_msec": 5}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "Job saved");
    let before = scrape(&url).await;
    let started = "taskhive_load_execs_started_total";
    assert_eq!(value(&before, started, &[]), 0.0);
    assert_eq!(value(&before, "taskhive_load_exec_running", &[]), 0.0);

    // Refusals come back as JSON errors, before any event.
    let r = c
        .post(format!("{url}/ui/exec"))
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "NOT_FOUND");
    let r = c
        .post(format!("{url}/ui/exec"))
        .body("{\"name\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let resp = c
        .post(format!("{url}/ui/exec"))
        .json(&json!({"name": "self"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut events = Events {
        resp,
        buf: String::new(),
    };
    // The first progress event that has samples: the run is under way.
    let progress = within(20, async {
        loop {
            let (ev, v) = events.next().await.expect("stream ended early");
            assert_eq!(ev, "progress", "{v}");
            if v["n_task"].as_u64().unwrap() > 0 {
                return v;
            }
        }
    })
    .await;
    assert_eq!(progress["name"], "self");
    assert!(progress["p99_usec"].as_u64().unwrap() >= progress["p50_usec"].as_u64().unwrap());
    assert!(progress["p50_usec"].as_u64().unwrap() > 0);
    assert!(progress["rps"].as_f64().unwrap() > 0.0);

    // Mid-run: the series move while the exec goes on.
    let mid = scrape(&url).await;
    let ok = [("task_class", "http.get"), ("result", "success")];
    assert_eq!(value(&mid, started, &[]), 1.0);
    assert_eq!(value(&mid, "taskhive_load_exec_running", &[]), 1.0);
    assert!(value(&mid, "taskhive_load_tasks_total", &ok) >= progress["n_task"].as_f64().unwrap());
    assert!(value(&mid, "taskhive_load_tasks_per_second", &[]) > 0.0);
    let hist = "taskhive_load_task_seconds";
    assert!(mid
        .samples
        .iter()
        .any(|x| x.metric == hist && x.labels.get("task_class") == Some("http.get")));

    let finished = within(20, async {
        loop {
            match events.next().await.expect("stream ended without finished") {
                (ev, v) if ev == "finished" => return v,
                (ev, _) => assert_eq!(ev, "progress"),
            }
        }
    })
    .await;
    assert!(events.next().await.is_none(), "finished is the last event");
    let n = finished["n_task"].as_f64().unwrap();
    assert!(n > progress["n_task"].as_f64().unwrap());
    assert_eq!(finished["n_fail"], 0);
    assert_eq!(finished["aborted"], false);

    // After the run: every task counted once, in the counter and the histogram.
    let after = scrape(&url).await;
    assert_eq!(value(&after, "taskhive_load_tasks_total", &ok), n);
    let fail = [("task_class", "http.get"), ("result", "fail")];
    assert_eq!(value(&after, "taskhive_load_tasks_total", &fail), 0.0);
    let count = after
        .samples
        .iter()
        .find(|x| {
            x.metric == "taskhive_load_task_seconds_count"
                && x.labels.get("task_class") == Some("http.get")
        })
        .expect("histogram count");
    assert!(
        matches!(count.value, prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) if v == n)
    );
    assert_eq!(value(&after, "taskhive_load_exec_running", &[]), 0.0);
    assert_eq!(value(&after, "taskhive_load_tasks_per_second", &[]), 0.0);
    let done = "taskhive_load_execs_finished_total";
    assert_eq!(value(&after, done, &[("result", "ok")]), 1.0);
    assert_eq!(value(&after, started, &[]), 1.0);
    let status: Value = c
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["last_exec"]["id"], finished["exec_id"]);
}

async fn grpc(addr: std::net::SocketAddr) -> SchedulerClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SchedulerClient::new(ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_ends_the_process_with_status_0_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut child, addr) = spawn_server(&dir, &[]).await;
    let mut g = grpc(addr).await;
    g.submit_job(job("q", "held")).await.unwrap();
    g.submit_job(job("q", "waiting")).await.unwrap();
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut w = Worker::connect(ch, &["q"], 1).await;
    let held = w.next_job().await;
    assert_eq!(held.name, "held");
    let r = http()
        .post(format!("http://{addr}/quit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let status = within(20, child.wait()).await.unwrap();
    assert!(status.success(), "taskhive serve exited with {status}");

    let (_child, addr) = spawn_server(&dir, &[]).await;
    let mut g = grpc(addr).await;
    assert_eq!(task_status(&mut g, "q").await.pending, 2);
    for name in ["held", "waiting"] {
        let j = g
            .get_job(pb::JobRef {
                job_id: 0,
                task: "q".into(),
                name: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(j.state(), pb::JobState::Pending, "{name}");
        assert_eq!(j.attempts, 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mixed_requests_in_flight_at_once() {
    const N: usize = 1000;
    let s = TestServer::start().await;
    let url = s.url();
    // Several HTTP/2 connections for gRPC (each carries many streams) and a pooled HTTP/1
    // client that opens as many connections as there are requests in flight.
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(s.channel().await);
    }
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(N)
        .build()
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..N {
        let (c, url, start) = (c.clone(), url.clone(), start.clone());
        let mut g = SchedulerClient::new(channels[i % channels.len()].clone());
        set.spawn(async move {
            start.wait().await;
            let kind = i % 5;
            match kind {
                0 => {
                    let r = c
                        .post(format!("{url}/taskhive.v1.Scheduler/SubmitJob"))
                        .json(&json!({"task": "mix", "name": format!("h{i}")}))
                        .send()
                        .await
                        .map_err(|e| format!("http submit {i}: {e}"))?;
                    if r.status() != StatusCode::OK {
                        return Err(format!("http submit {i}: {}", r.status()));
                    }
                }
                1 => {
                    g.submit_job(job("mix", &format!("g{i}")))
                        .await
                        .map_err(|e| format!("grpc submit {i}: {e}"))?;
                }
                2 => {
                    let r = c
                        .post(format!("{url}/"))
                        .form(&[("func", "mix"), ("name", &format!("p{i}"))])
                        .send()
                        .await
                        .map_err(|e| format!("form submit {i}: {e}"))?;
                    let body = r.text().await.map_err(|e| e.to_string())?;
                    if body != r#"{"msg": "SUCCESS"}"# && body != r#"{"msg":"SUCCESS"}"# {
                        return Err(format!("form submit {i}: {body}"));
                    }
                }
                3 => {
                    g.status(pb::StatusRequest::default())
                        .await
                        .map_err(|e| format!("grpc status {i}: {e}"))?;
                }
                _ => {
                    let r = c
                        .get(format!("{url}/metrics"))
                        .send()
                        .await
                        .map_err(|e| format!("metrics {i}: {e}"))?;
                    if r.status() != StatusCode::OK {
                        return Err(format!("metrics {i}: {}", r.status()));
                    }
                }
            }
            Ok::<usize, String>(kind)
        });
    }
    let mut by_kind: HashMap<usize, usize> = HashMap::new();
    let errors: Vec<String> = within(120, async {
        let mut errors = Vec::new();
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(k) => *by_kind.entry(k).or_default() += 1,
                Err(e) => errors.push(e),
            }
        }
        errors
    })
    .await;
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(by_kind.values().sum::<usize>(), N);
    // Every submit, from all three faces, is one pending job.
    let mut g = s.client().await;
    assert_eq!(task_status(&mut g, "mix").await.pending, 3 * N as u64 / 5);
}
