//! The load runner end to end: a real server, a real local HTTP target, real gRPC clients,
//! a real worker for remote task classes, and the CLI binary.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::target::{Target, STALL};
use common::{within, TestServer};
use serde_json::{json, Value};
use taskhive::pb::{self, load_runner_client::LoadRunnerClient};
use tonic::transport::Channel;

type Client = LoadRunnerClient<Channel>;

/// HTTP task classes every test server gets.
const TASKS_TOML: &str = r#"
[[task]]
name = "t.ok"
path = "/ok"

[[task]]
name = "t.fail"
path = "/status/500"

[[task]]
name = "t.post"
method = "POST"
path = "/echo?mc={{sc_mc}}"
body = '{"mc":"{{sc_mc}}"}'
[task.headers]
x-mc = "{{ sc_mc }}"
content-type = "application/json"

[[task]]
name = "t.ramp"
path = "/ramp"
"#;

struct Setup {
    server: TestServer,
    target: Target,
    client: Client,
    _tasks_dir: tempfile::TempDir,
}

async fn setup_with(tweak: impl FnOnce(&mut taskhive::config::Config)) -> Setup {
    let tasks_dir = tempfile::tempdir().unwrap();
    let tasks = tasks_dir.path().join("tasks.toml");
    std::fs::write(&tasks, TASKS_TOML).unwrap();
    let target = Target::start().await;
    let server = TestServer::start_with(|c| {
        c.load.tasks_file = Some(tasks);
        tweak(c);
    })
    .await;
    let client = LoadRunnerClient::new(server.channel().await);
    Setup {
        server,
        target,
        client,
        _tasks_dir: tasks_dir,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

async fn save(c: &mut Client, job: Value) -> pb::LoadJob {
    c.save_load_job(pb::SaveLoadJobRequest {
        input: Some(pb::save_load_job_request::Input::JobJson(job.to_string())),
    })
    .await
    .unwrap_or_else(|e| panic!("save {job}: {e}"))
    .into_inner()
}

fn exec_req(name: &str) -> pb::ExecRequest {
    pb::ExecRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Progress events with the time each arrived, and the finished JobExec.
struct Ran {
    progress: Vec<(Instant, pb::ExecProgress)>,
    finished_at: Instant,
    exec: pb::JobExec,
    json: Value,
}

async fn run(c: &mut Client, req: pb::ExecRequest) -> Ran {
    let mut stream = c.exec(req).await.unwrap().into_inner();
    within(60, async {
        let mut progress = Vec::new();
        loop {
            let ev = stream.message().await.unwrap().expect("stream ended early");
            match ev.event.unwrap() {
                pb::exec_event::Event::Progress(p) => progress.push((Instant::now(), p)),
                pb::exec_event::Event::Finished(exec) => {
                    let json = serde_json::from_str(&exec.json).unwrap();
                    return Ran {
                        progress,
                        finished_at: Instant::now(),
                        exec,
                        json,
                    };
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
}

async fn run_job(c: &mut Client, name: &str) -> Ran {
    run(c, exec_req(name)).await
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn task<'a>(r: &'a Ran, class: &str) -> &'a pb::TaskExec {
    r.exec
        .tasks
        .iter()
        .find(|t| t.task_class == class)
        .unwrap_or_else(|| panic!("no task {class}"))
}

fn is_beetle_time(s: &str) -> bool {
    s.len() == 29 && chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.3f+00:00").is_ok()
}

const BEETLE_EXEC_KEYS: &[&str] = &[
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
    "threshold_exceeded",
];
const BEETLE_TASK_KEYS: &[&str] = &[
    "host",
    "weight",
    "sleep_min_msec",
    "sleep_max_msec",
    "threshold_avg_usec",
    "threshold_max_usec",
    "n_task",
    "n_success",
    "n_fail",
    "min_usec",
    "max_usec",
    "avg_usec",
    "tot_usec",
    "executions",
    "threshold_avg_exceeded",
    "threshold_max_exceeded",
];
const BEETLE_EXECUTION_KEYS: &[&str] = &[
    "id",
    "swarm_id",
    "t_start",
    "elapsed_usec",
    "request_context",
    "is_success",
];

#[tokio::test]
async fn seed_example_job_yields_every_beetle_field_in_order() {
    let mut s = setup().await;
    let host = s.target.url("/charges");
    // The seed's charges_local_2: run_n 2, one swarm, sleeps 500..1000 ms.
    let saved = save(
        &mut s.client,
        json!({
            "name": "charges_local_2",
            "host": host,
            "run_for_sec": 0,
            "run_n": 2,
            "tasks": [{"task_class": "http.get", "weight": 1, "sleep_min_msec": 500, "sleep_max_msec": 1000}]
        }),
    )
    .await;
    // /jobs shape: Beetle's key order, defaults and the inherited host filled in.
    let job: Value = serde_json::from_str(&saved.json).unwrap();
    assert_eq!(
        keys(&job),
        ["name", "host", "tasks", "run_for_sec", "run_n", "n_swarm"]
    );
    assert_eq!(
        keys(&job["tasks"][0]),
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
    assert_eq!(job["tasks"][0]["host"], json!(host));
    assert_eq!(job["n_swarm"], json!(1));
    let listed = s
        .client
        .list_load_jobs(pb::ListLoadJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].json, saved.json);

    let r = run(
        &mut s.client,
        pb::ExecRequest {
            params: [("sc_mc".to_string(), "mc".to_string())].into(),
            ..exec_req("charges_local_2")
        },
    )
    .await;
    let x = &r.json;
    let top = keys(x);
    assert_eq!(&top[..BEETLE_EXEC_KEYS.len()], BEETLE_EXEC_KEYS, "{top:?}");
    assert!(uuid::Uuid::parse_str(x["id"].as_str().unwrap()).is_ok());
    assert_eq!(x["name"], "charges_local_2");
    assert_eq!(x["host"], json!(host));
    assert!(
        is_beetle_time(x["t_start"].as_str().unwrap()),
        "{}",
        x["t_start"]
    );
    assert!(x["elapsed_usec"].is_u64());
    assert_eq!(x["params"], json!({"sc_mc": "mc"}));
    assert_eq!(x["error_400_on_threshold_exceeded"], json!(false));
    assert_eq!(
        (
            x["run_for_sec"].as_u64(),
            x["run_n"].as_u64(),
            x["n_swarm"].as_u64()
        ),
        (Some(0), Some(2), Some(1))
    );
    assert_eq!(x["threshold_exceeded"], json!(false));

    assert_eq!(keys(&x["tasks"]), ["http.get"]);
    let t = &x["tasks"]["http.get"];
    let tk = keys(t);
    assert_eq!(&tk[..BEETLE_TASK_KEYS.len()], BEETLE_TASK_KEYS, "{tk:?}");
    for k in &BEETLE_TASK_KEYS[1..13] {
        assert!(t[k].is_u64(), "{k} is {}", t[k]);
    }
    assert_eq!(t["host"], json!(host));
    assert_eq!(
        (
            t["n_task"].as_u64(),
            t["n_success"].as_u64(),
            t["n_fail"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );
    let (tot, avg) = (
        t["tot_usec"].as_u64().unwrap(),
        t["avg_usec"].as_u64().unwrap(),
    );
    assert_eq!(avg, tot / 2);
    assert!(t["min_usec"].as_u64() <= t["max_usec"].as_u64());
    assert!(t["threshold_avg_exceeded"].is_boolean() && t["threshold_max_exceeded"].is_boolean());
    let ex = t["executions"].as_array().unwrap();
    assert_eq!(ex.len(), 2);
    let mut sum = 0;
    for e in ex {
        assert_eq!(keys(e), BEETLE_EXECUTION_KEYS);
        assert!(uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok());
        assert_eq!(e["swarm_id"], json!(1));
        assert!(is_beetle_time(e["t_start"].as_str().unwrap()));
        assert!(e["request_context"]
            .as_str()
            .unwrap()
            .starts_with("200 GET "));
        assert_eq!(e["is_success"], json!(true));
        sum += e["elapsed_usec"].as_u64().unwrap();
    }
    assert_eq!(sum, tot);
    // One sleep of 500..1000 ms between the two tasks, none after the last.
    let gap = r.exec.elapsed_usec;
    assert!((500_000..1_500_000).contains(&gap), "elapsed {gap}");
    // Typed fields agree with the JSON.
    assert_eq!(r.exec.id, x["id"].as_str().unwrap());
    assert_eq!(task(&r, "http.get").tot_usec, tot);
    s.server.stop().await;
}

#[tokio::test]
async fn run_n_counts_per_swarm_when_run_for_sec_is_zero() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "n", "host": s.target.url(""), "run_n": 5, "n_swarm": 3,
               "tasks": [{"task_class": "t.ok"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "n").await;
    assert_eq!(r.exec.n_task, 15);
    let t = task(&r, "t.ok");
    assert_eq!((t.n_task, t.n_success), (15, 15));
    let mut per_swarm = BTreeMap::new();
    for e in r.json["tasks"]["t.ok"]["executions"].as_array().unwrap() {
        *per_swarm
            .entry(e["swarm_id"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(per_swarm, BTreeMap::from([(1, 5), (2, 5), (3, 5)]));
    assert_eq!(s.target.hits("/ok"), 15);
}

#[tokio::test]
async fn run_for_sec_stops_on_time() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "t", "host": s.target.url(""), "run_for_sec": 2, "n_swarm": 2,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 5, "sleep_max_msec": 15}]}),
    )
    .await;
    let r = run_job(&mut s.client, "t").await;
    let e = r.exec.elapsed_usec;
    assert!(
        (2_000_000..=2_200_000).contains(&e),
        "elapsed {e} µs, want 2 s ±10%"
    );
    assert!(r.exec.n_task > 20, "{}", r.exec.n_task);
    let timeline = r.json["timeline"].as_array().unwrap();
    assert!((2..=3).contains(&timeline.len()), "{timeline:?}");
    let in_timeline: u64 = timeline.iter().map(|p| p["n_task"].as_u64().unwrap()).sum();
    assert_eq!(in_timeline, r.exec.n_task);
}

#[tokio::test]
async fn weights_split_tasks_within_tolerance() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "w", "host": s.target.url("/ok"), "run_n": 100, "n_swarm": 4,
               "tasks": [{"task_class": "http.get", "weight": 3}, {"task_class": "t.ok", "weight": 1}]}),
    )
    .await;
    let r = run_job(&mut s.client, "w").await;
    assert_eq!(r.exec.n_task, 400);
    // Binomial(400, 0.75): mean 300, sd 8.66; ±40 is 4.6 sd (a false failure < 1 in 100,000).
    let heavy = task(&r, "http.get").n_task;
    assert!((260..=340).contains(&heavy), "http.get ran {heavy} of 400");
    assert_eq!(heavy + task(&r, "t.ok").n_task, 400);
}

#[tokio::test]
async fn sleeps_are_honoured_and_none_follows_the_last_task() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "s", "host": s.target.url(""), "run_n": 3,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 200, "sleep_max_msec": 200}]}),
    )
    .await;
    let r = run_job(&mut s.client, "s").await;
    let e = r.exec.elapsed_usec;
    // Two sleeps of 200 ms; a third after the last task would make it >= 600 ms.
    assert!((400_000..590_000).contains(&e), "elapsed {e}");
    let starts: Vec<chrono::NaiveDateTime> = r.json["tasks"]["t.ok"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            chrono::NaiveDateTime::parse_from_str(
                x["t_start"].as_str().unwrap(),
                "%Y-%m-%d %H:%M:%S%.3f+00:00",
            )
            .unwrap()
        })
        .collect();
    for w in starts.windows(2) {
        assert!((w[1] - w[0]).num_milliseconds() >= 200, "{starts:?}");
    }
}

#[tokio::test]
async fn failures_are_counted_when_the_target_answers_500() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "f", "host": s.target.url(""), "run_n": 10, "n_swarm": 2,
               "tasks": [{"task_class": "t.ok"}, {"task_class": "t.fail"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "f").await;
    let (ok, bad) = (task(&r, "t.ok"), task(&r, "t.fail"));
    assert_eq!(ok.n_task + bad.n_task, 20);
    assert_eq!((ok.n_fail, ok.n_success), (0, ok.n_task));
    assert_eq!((bad.n_fail, bad.n_success), (bad.n_task, 0));
    assert_eq!(r.exec.n_fail, bad.n_task);
    for e in r.json["tasks"]["t.fail"]["executions"].as_array().unwrap() {
        assert_eq!(e["is_success"], json!(false));
        let ctx = e["request_context"].as_str().unwrap();
        assert!(
            ctx.starts_with("500 GET ") && ctx.contains("status 500"),
            "{ctx}"
        );
    }
    // The generic class fails on a 500 as well.
    s.target
        .state
        .error_every
        .store(2, std::sync::atomic::Ordering::Relaxed);
    save(
        &mut s.client,
        json!({"name": "g", "host": s.target.url("/flaky"), "run_n": 10, "tasks": [{"task_class": "http.get"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "g").await;
    assert_eq!((r.exec.n_task, r.exec.n_fail), (10, 5));
}

#[tokio::test]
async fn max_failure_count_aborts_the_run() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "m", "host": s.target.url(""), "run_for_sec": 30,
               "tasks": [{"task_class": "t.fail", "sleep_min_msec": 1, "sleep_max_msec": 5}]}),
    )
    .await;
    let started = Instant::now();
    let r = run(
        &mut s.client,
        pb::ExecRequest {
            max_failure_count: 3,
            ..exec_req("m")
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.exec.aborted);
    assert_eq!(r.exec.n_fail, 3, "one swarm: the third failure stops it");
    assert!(
        r.exec.abort_reason.contains("max_failure_count 3"),
        "{}",
        r.exec.abort_reason
    );
    assert_eq!(r.json["aborted"], json!(true));
    // Without a limit the same job would have run on.
    let summary = s
        .client
        .list_execs(pb::ListExecsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .execs;
    assert!(summary[0].aborted);
}

#[tokio::test]
async fn thresholds_set_the_flags_and_the_cli_exits_99() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "slow", "host": s.target.url("/delay/20"), "run_n": 3,
               "tasks": [{"task_class": "http.get", "threshold_avg_usec": 1000, "threshold_max_usec": 60000000}]}),
    )
    .await;
    save(
        &mut s.client,
        json!({"name": "fast", "host": s.target.url(""), "run_n": 3,
               "tasks": [{"task_class": "t.ok", "threshold_max_usec": 60000000}]}),
    )
    .await;
    let r = run(
        &mut s.client,
        pb::ExecRequest {
            error_400_on_threshold_exceeded: true,
            ..exec_req("slow")
        },
    )
    .await;
    let t = task(&r, "http.get");
    assert!(t.avg_usec >= 20_000);
    assert!(t.threshold_avg_exceeded && !t.threshold_max_exceeded);
    assert!(r.exec.threshold_exceeded);
    assert_eq!(r.json["error_400_on_threshold_exceeded"], json!(true));
    let r = run_job(&mut s.client, "fast").await;
    assert!(!r.exec.threshold_exceeded);

    let cli = |args: &[&str]| {
        let mut c = tokio::process::Command::new(common::child::bin());
        c.args(["load"])
            .args(args)
            .args(["--addr", &s.server.addr.to_string()]);
        c.kill_on_drop(true);
        c
    };
    let out = within(60, cli(&["exec", "slow"]).output()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert!(
        stdout.contains("threshold exceeded: http.get avg"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TASK") && stdout.contains("P99"),
        "{stdout}"
    );
    let out = within(60, cli(&["exec", "fast", "--json"]).output())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let x: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["name"], "fast");
    assert_eq!(&keys(&x)[..12], BEETLE_EXEC_KEYS);
}

#[tokio::test]
async fn webhook_receives_the_job_exec() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "h", "host": s.target.url(""), "run_n": 4, "n_swarm": 2,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 100, "sleep_max_msec": 100}]}),
    )
    .await;
    let mut stream = s
        .client
        .exec(pb::ExecRequest {
            webhook_url: s.target.url("/hook"),
            ..exec_req("h")
        })
        .await
        .unwrap()
        .into_inner();
    // The call returns at once: one event, then the stream ends while the run goes on.
    let first = within(5, stream.message()).await.unwrap().unwrap();
    let Some(pb::exec_event::Event::Enqueued(e)) = first.event else {
        panic!("expected enqueued, got {first:?}");
    };
    assert!(within(5, stream.message()).await.unwrap().is_none());
    let status = s
        .client
        .get_load_status(pb::GetLoadStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.running && status.exec_id == e.exec_id, "{status:?}");

    let body = s.target.next_hook(30).await;
    let x: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(x["id"], json!(e.exec_id));
    assert_eq!(x["tasks"]["t.ok"]["n_task"], json!(8));
    assert_eq!(&keys(&x)[..12], BEETLE_EXEC_KEYS);
    // The same document is archived.
    let archived = s
        .client
        .get_exec(pb::GetExecRequest {
            id: e.exec_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.json, body);
}

#[tokio::test]
async fn a_second_exec_while_one_runs_is_rejected() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "long", "host": s.target.url(""), "run_for_sec": 2,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 10, "sleep_max_msec": 20}]}),
    )
    .await;
    let mut first = s.client.exec(exec_req("long")).await.unwrap().into_inner();
    let ev = within(5, first.message()).await.unwrap().unwrap();
    let Some(pb::exec_event::Event::Progress(p)) = ev.event else {
        panic!("expected progress, got {ev:?}");
    };
    let err = s.client.exec(exec_req("long")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert!(err.message().contains(&p.exec_id), "{}", err.message());
    assert_eq!(
        err.metadata()
            .get(taskhive::rpc::RUNNING_EXEC_KEY)
            .unwrap()
            .to_str()
            .unwrap(),
        p.exec_id
    );
    let status = s
        .client
        .get_load_status(pb::GetLoadStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.running);
    assert_eq!(
        (status.exec_id.as_str(), status.name.as_str()),
        (p.exec_id.as_str(), "long")
    );
    let js: Value = serde_json::from_str(&status.json).unwrap();
    assert_eq!(js["state"], "running");
    // Unknown jobs are NOT_FOUND even while busy.
    let err = s.client.exec(exec_req("nope")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let done = within(20, async {
        loop {
            let ev = first.message().await.unwrap().unwrap();
            if let Some(pb::exec_event::Event::Finished(x)) = ev.event {
                return x;
            }
        }
    })
    .await;
    let status = s
        .client
        .get_load_status(pb::GetLoadStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.running);
    assert_eq!(status.last_exec.unwrap().id, done.id);
    // Free again.
    let r = run_job(&mut s.client, "long").await;
    assert_ne!(r.exec.id, done.id);
}

#[tokio::test]
async fn params_reach_the_target() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "p", "host": s.target.url(""), "run_n": 2, "tasks": [{"task_class": "t.post"}]}),
    )
    .await;
    let err = s.client.exec(exec_req("p")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("params: task t.post uses {{sc_mc}}"),
        "{}",
        err.message()
    );

    let r = run(
        &mut s.client,
        pb::ExecRequest {
            params: [("sc_mc".to_string(), "mc-42".to_string())].into(),
            ..exec_req("p")
        },
    )
    .await;
    assert_eq!(r.exec.n_fail, 0);
    let seen = s.target.seen();
    assert_eq!(seen.len(), 2);
    for req in seen {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/echo?mc=mc-42");
        assert_eq!(req.headers["x-mc"], "mc-42");
        assert_eq!(req.headers["content-type"], "application/json");
        assert_eq!(req.body, r#"{"mc":"mc-42"}"#);
    }
}

#[tokio::test]
async fn a_remote_task_class_runs_on_a_worker() {
    let mut s = setup().await;
    let mut worker = s.server.worker(&["py.charge"], 4).await;
    let tasks = s
        .client
        .list_tasks(pb::ListTasksRequest {})
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(
        tasks,
        [
            "http.get",
            "t.ok",
            "t.fail",
            "t.post",
            "t.ramp",
            "py.charge"
        ]
    );
    let host = "https://app.example.test/api";
    save(
        &mut s.client,
        json!({"name": "r", "host": host, "run_n": 3, "n_swarm": 2,
               "tasks": [{"task_class": "py.charge"}]}),
    )
    .await;
    // The worker: swarm 1's second run fails; the others report a context and their own time.
    let jobs = tokio::spawn(async move {
        let mut args = Vec::new();
        for _ in 0..6 {
            let j = worker.next_job().await;
            assert_eq!(j.task, "py.charge");
            args.push(serde_json::from_slice::<Value>(&j.args).unwrap());
            if j.name.ends_with("/1/1") {
                worker.fail(j.lease_id, "card declined").await;
            } else {
                let result = json!({"request_context": format!("buyer_id: {}", j.name), "elapsed_usec": 1234});
                worker.done(j.lease_id, result.to_string().as_bytes()).await;
            }
        }
        (worker, args)
    });
    let r = run(
        &mut s.client,
        pb::ExecRequest {
            params: [("k".to_string(), "v".to_string())].into(),
            ..exec_req("r")
        },
    )
    .await;
    let (_worker, args) = within(10, jobs).await.unwrap();
    for a in &args {
        assert_eq!(a["params"], json!({"k": "v"}));
        assert_eq!(a["host"], json!(host));
        assert_eq!(a["exec_id"], json!(r.exec.id));
        assert!([1, 2].contains(&a["swarm_id"].as_u64().unwrap()));
    }
    let t = task(&r, "py.charge");
    assert_eq!((t.n_task, t.n_success, t.n_fail), (6, 5, 1));
    for e in r.json["tasks"]["py.charge"]["executions"]
        .as_array()
        .unwrap()
    {
        let ctx = e["request_context"].as_str().unwrap();
        if e["is_success"] == json!(true) {
            assert!(
                ctx.starts_with(&format!("buyer_id: {}/", r.exec.id)),
                "{ctx}"
            );
            assert_eq!(e["elapsed_usec"], json!(1234));
        } else {
            assert_eq!(ctx, "card declined");
        }
    }
    // One-shot runs leave nothing behind in the scheduler, not even the failed one.
    let mut sched = s.server.client().await;
    let st = common::task_status(&mut sched, "py.charge").await;
    assert_eq!((st.pending, st.running, st.dead), (0, 0, 0), "{st:?}");

    drop(_worker);
    // With the worker gone the class is no longer offered, and its job cannot run.
    within(10, async {
        loop {
            let t = s
                .client
                .list_tasks(pb::ListTasksRequest {})
                .await
                .unwrap()
                .into_inner()
                .tasks;
            if !t.iter().any(|t| t == "py.charge") {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let err = s.client.exec(exec_req("r")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("no worker for task py.charge"),
        "{}",
        err.message()
    );
    let info = tonic_types::StatusExt::get_details_error_info(&err).expect("ErrorInfo");
    assert_eq!(info.reason, "NO_WORKER");
    assert_eq!(info.metadata["task"], "py.charge");
    assert!(info.metadata["field"].ends_with("].task_class"), "{info:?}");
}

#[tokio::test]
async fn hdr_percentiles_match_a_known_delay_distribution() {
    let mut s = setup().await;
    // /ramp's n-th hit takes ((n-1) % 100 + 1) ms: 100 runs see every delay 1..=100 ms once.
    save(
        &mut s.client,
        json!({"name": "ramp", "host": s.target.url(""), "run_n": 25, "n_swarm": 4,
               "tasks": [{"task_class": "t.ramp"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "ramp").await;
    let t = task(&r, "t.ramp");
    assert_eq!(t.n_task, 100);
    let ms = |u: u64| u as f64 / 1000.0;
    // Each measured latency is its delay plus some overhead (timer granularity, HTTP, and a
    // busy CI machine's scheduling): never less than the delay, and bounded loosely; the
    // exact rank check below is what pins each percentile down.
    for (got, want) in [(t.p50_usec, 50.0), (t.p90_usec, 90.0), (t.p99_usec, 99.0)] {
        assert!(
            ms(got) >= want && ms(got) <= want + 35.0,
            "got {} ms, want {want} ms",
            ms(got)
        );
    }
    assert!(ms(t.min_usec) >= 1.0 && ms(t.max_usec) >= 100.0);
    // And exactly (to HDR's 3 significant digits) the percentiles of the executions listed.
    let mut v: Vec<u64> = r.json["tasks"]["t.ramp"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["elapsed_usec"].as_u64().unwrap())
        .collect();
    v.sort_unstable();
    for (got, q) in [
        (t.p50_usec, 0.5),
        (t.p90_usec, 0.9),
        (t.p99_usec, 0.99),
        (t.p999_usec, 0.999),
    ] {
        let rank = ((q * 100.0_f64).ceil() as usize).clamp(1, 100);
        let want = v[rank - 1];
        assert!(
            got.abs_diff(want) as f64 <= want as f64 * 0.001 + 1.0,
            "q{q}: {got} vs {want}"
        );
    }
    assert_eq!(r.exec.p99_usec, t.p99_usec, "one task: overall = task");
}

#[tokio::test]
async fn the_executions_list_is_capped_but_stats_cover_all() {
    let mut s = setup_with(|c| c.load.max_executions = 5).await;
    save(
        &mut s.client,
        json!({"name": "cap", "host": s.target.url(""), "run_n": 20, "tasks": [{"task_class": "t.ok"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "cap").await;
    let t = &r.json["tasks"]["t.ok"];
    assert_eq!(t["executions"].as_array().unwrap().len(), 5);
    assert_eq!(t["n_executions_dropped"], json!(15));
    assert_eq!(t["n_task"], json!(20));
    let listed: u64 = t["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["elapsed_usec"].as_u64().unwrap())
        .sum();
    assert!(t["tot_usec"].as_u64().unwrap() > listed);
}

#[tokio::test]
async fn arrival_rate_mode_reports_a_stall_the_closed_model_hides() {
    let mut s = setup().await;
    // Both targets stall for 1 s once (their 20th hit), otherwise answer at once.
    save(
        &mut s.client,
        json!({"name": "open", "host": s.target.url("/stall/open"), "run_for_sec": 2,
               "rate_per_sec": 100, "tasks": [{"task_class": "http.get"}]}),
    )
    .await;
    save(
        &mut s.client,
        json!({"name": "closed", "host": s.target.url("/stall/closed"), "run_for_sec": 2,
               "tasks": [{"task_class": "http.get"}]}),
    )
    .await;
    let open = run_job(&mut s.client, "open").await;
    let closed = run_job(&mut s.client, "closed").await;
    let stall = STALL.as_micros() as u64;
    assert!(open.exec.n_task >= 150, "open: {} tasks", open.exec.n_task);
    assert!(
        closed.exec.n_task >= 300,
        "closed: {} tasks (too few to judge)",
        closed.exec.n_task
    );
    assert!(
        open.exec.p99_usec >= stall * 9 / 10,
        "open p99 {} µs",
        open.exec.p99_usec
    );
    // The closed model measured the stall once, and its p99 does not show it.
    assert!(
        closed.exec.p99_usec < stall / 10,
        "closed p99 {} µs",
        closed.exec.p99_usec
    );
    assert!(task(&closed, "http.get").max_usec >= stall);
    // In the open model about a second's worth of arrivals waited behind the stall.
    let waited = open.json["tasks"]["http.get"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["elapsed_usec"].as_u64().unwrap() >= stall / 2)
        .count();
    assert!(waited >= 30, "{waited} arrivals waited >= 0.5 s");
    assert_eq!(open.json["rate_per_sec"], json!(100.0));
}

#[tokio::test]
async fn progress_events_arrive_during_the_run() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "prog", "host": s.target.url(""), "run_for_sec": 3,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 5, "sleep_max_msec": 10}]}),
    )
    .await;
    let r = run_job(&mut s.client, "prog").await;
    let live: Vec<&(Instant, pb::ExecProgress)> =
        r.progress.iter().filter(|(_, p)| p.n_task > 0).collect();
    assert!(
        live.len() >= 2,
        "{} progress events with tasks done",
        live.len()
    );
    let first = live[0].0;
    assert!(
        r.finished_at.duration_since(first) >= Duration::from_millis(1500),
        "first progress {:?} before the end",
        r.finished_at.duration_since(first)
    );
    for w in r.progress.windows(2) {
        assert!(w[0].1.n_task <= w[1].1.n_task && w[0].1.elapsed_usec <= w[1].1.elapsed_usec);
    }
    let last = &r.progress.last().unwrap().1;
    assert!(last.rps > 0.0 && last.p50_usec > 0 && last.run_for_sec == 3);
    assert!(last.exec_id == r.exec.id && last.name == "prog");
}

#[tokio::test]
async fn bad_jobs_are_rejected_naming_the_field_and_nothing_is_stored() {
    let mut s = setup_with(|c| c.load.max_swarms = 100).await;
    let h = s.target.url("");
    let task = |extra: Value| {
        let mut t = json!({"task_class": "t.ok"});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    };
    let job = |extra: Value, t: Value| {
        let mut j = json!({"name": "bad", "host": h, "run_n": 1, "tasks": [t]});
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        j.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{\"name\": ".into(), "job: malformed JSON"),
        ("[1]".into(), "job: must be a JSON object"),
        (job(json!({}), task(json!({"task_class": "Nope::Task"}))), "tasks[0].task_class: unknown task class \"Nope::Task\""),
        (job(json!({}), task(json!({"weight": 0}))), "tasks[0].weight: 0 must be > 0"),
        (job(json!({}), task(json!({"weight": -2}))), "tasks[0].weight: -2 must be >= 0"),
        (job(json!({}), task(json!({"weight": 1.5}))), "tasks[0].weight: expected an integer"),
        (job(json!({}), task(json!({"sleep_min_msec": 500, "sleep_max_msec": 100}))), "tasks[0].sleep_min_msec: 500 is greater than sleep_max_msec 100"),
        (job(json!({"run_n": -1}), task(json!({}))), "run_n: -1 must be >= 0"),
        (job(json!({"run_for_sec": "10"}), task(json!({}))), "run_for_sec: expected an integer, got a string"),
        (job(json!({"n_swarm": 0}), task(json!({}))), "n_swarm: 0 must be between 1 and 100"),
        (job(json!({"n_swarm": 101}), task(json!({}))), "n_swarm: 101 must be between 1 and 100"),
        (job(json!({"host": "not a url"}), task(json!({}))), "host: \"not a url\" is not"),
        (job(json!({}), task(json!({"host": "localhost:80"}))), "tasks[0].host: "),
        (job(json!({}), task(json!({"host": "ftp://x.test"}))), "tasks[0].host: \"ftp://x.test\": only http:// and https://"),
        (job(json!({"run_n": 0}), task(json!({}))), "run_for_sec: a job needs run_for_sec or run_n"),
        (job(json!({"name": ""}), task(json!({}))), "name: must not be empty"),
        (job(json!({"tasks": []}), task(json!({}))), "tasks: must list at least one task"),
        (job(json!({"run_fro_sec": 1}), task(json!({}))), "run_fro_sec: unknown field"),
        (job(json!({"rate_per_sec": -1}), task(json!({}))), "rate_per_sec: -1 must be > 0"),
        (job(json!({"rate_per_sec": 5}), task(json!({"sleep_max_msec": 5}))), "tasks[0].sleep_max_msec: sleeps do not apply"),
        (job(json!({"run_for_sec": 5, "stages": [{"duration_sec": 5, "target": 2}]}), task(json!({}))), "run_for_sec: a job with stages lasts the stages' total"),
        (job(json!({"stages": []}), task(json!({}))), "stages: must list at least one stage"),
        (job(json!({"stages": [{"duration_sec": 1, "target": 2}, {"duration_sec": 0, "target": 1}]}), task(json!({}))), "stages[1].duration_sec: 0 must be > 0"),
        (job(json!({"n_swarm": 2, "stages": [{"duration_sec": 1, "target": 1}, {"duration_sec": 1, "target": 3}]}), task(json!({}))), "stages[1].target: 3 swarms is more than n_swarm 2"),
        (job(json!({"stages": [{"duration_sec": 1}]}), task(json!({}))), "stages[0].target: is required"),
        (job(json!({"stages": [{"duration_sec": 1, "target": 1, "ramp": "x"}]}), task(json!({}))), "stages[0].ramp: unknown field"),
        (job(json!({"rate_per_sec": -1, "stages": [{"duration_sec": 1, "target": 1}]}), task(json!({}))), "rate_per_sec: -1 must be >= 0"),
        (
            json!({"name": "bad", "run_n": 1, "tasks": [{"task_class": "t.ok"}]}).to_string(),
            "tasks[0].host: is required when the job has no host",
        ),
        (
            json!({"name": "bad", "host": h, "run_n": 1, "tasks": [{"task_class": "t.ok"}, {"task_class": "t.ok"}]}).to_string(),
            "tasks[1].task_class: \"t.ok\" is already tasks[0]",
        ),
    ];
    for (text, want) in cases {
        let err = s
            .client
            .save_load_job(pb::SaveLoadJobRequest {
                input: Some(pb::save_load_job_request::Input::JobJson(text.clone())),
            })
            .await
            .expect_err(&text);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{text}");
        assert!(
            err.message().starts_with(want),
            "{text}\n got: {}\nwant: {want}",
            err.message()
        );
    }
    // The typed form is validated the same way.
    let err = s
        .client
        .save_load_job(pb::SaveLoadJobRequest {
            input: Some(pb::save_load_job_request::Input::Job(pb::LoadJob {
                name: "bad".into(),
                host: h.clone(),
                run_n: 1,
                tasks: vec![pb::LoadTask {
                    task_class: "t.ok".into(),
                    weight: Some(0),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("tasks[0].weight: 0 must be > 0"),
        "{}",
        err.message()
    );
    let jobs = s
        .client
        .list_load_jobs(pb::ListLoadJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(jobs.is_empty(), "{jobs:?}");

    // Exec requests too.
    let err = s
        .client
        .exec(pb::ExecRequest {
            webhook_url: "ftp://x/y".into(),
            ..exec_req("bad")
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("webhook_url: "),
        "{}",
        err.message()
    );
    let err = s
        .client
        .exec(pb::ExecRequest {
            max_failure_count: -1,
            ..exec_req("bad")
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("max_failure_count: -1"),
        "{}",
        err.message()
    );
    let err = s.client.exec(exec_req("bad")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn jobs_and_execs_survive_a_restart_and_the_archive_dir_gets_files() {
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().to_path_buf();
    let mut s = setup_with(|c| c.load.archive_dir = Some(archive_dir.clone())).await;
    let host = s.target.url("");
    save(
        &mut s.client,
        json!({"name": "keep", "host": host, "run_n": 1, "tasks": [{"task_class": "t.ok"}]}),
    )
    .await;
    // Same name: replaced.
    let typed = s
        .client
        .save_load_job(pb::SaveLoadJobRequest {
            input: Some(pb::save_load_job_request::Input::Job(pb::LoadJob {
                name: "keep".into(),
                host: host.clone(),
                run_n: 2,
                tasks: vec![pb::LoadTask {
                    task_class: "t.ok".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (typed.run_n, typed.n_swarm, typed.tasks[0].weight),
        (2, Some(1), Some(1))
    );
    let r = run_job(&mut s.client, "keep").await;
    assert_eq!(r.exec.n_task, 2);

    let files: Vec<_> = std::fs::read_dir(&archive_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0]
        .to_str()
        .unwrap()
        .ends_with(&format!("-{}.json", r.exec.id)));
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(on_disk, r.json);

    let Setup { server, target, .. } = s;
    let dir = server.stop().await;
    let tasks_dir = tempfile::tempdir().unwrap();
    let tasks = tasks_dir.path().join("tasks.toml");
    std::fs::write(&tasks, TASKS_TOML).unwrap();
    let server = TestServer::start_in(dir, |c| c.load.tasks_file = Some(tasks)).await;
    let mut c = LoadRunnerClient::new(server.channel().await);
    let jobs = c
        .list_load_jobs(pb::ListLoadJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].name.as_str(), jobs[0].run_n), ("keep", 2));
    let execs = c
        .list_execs(pb::ListExecsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .execs;
    assert_eq!(execs.len(), 1);
    assert_eq!(
        (execs[0].id.as_str(), execs[0].n_task),
        (r.exec.id.as_str(), 2)
    );
    let got = c
        .get_exec(pb::GetExecRequest {
            id: r.exec.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.json, r.exec.json);
    assert_eq!(got.tasks[0].n_task, 2);
    let err = c
        .get_exec(pb::GetExecRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    drop(target);
}

/// Runs `taskhive load ARGS --addr ADDR`: exit code, stdout, stderr.
async fn cli(addr: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = within(
        60,
        tokio::process::Command::new(common::child::bin())
            .arg("load")
            .args(args)
            .args(["--addr", addr])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_saves_lists_and_runs_jobs() {
    let s = setup().await;
    let addr = s.server.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.json");
    std::fs::write(
        &file,
        json!({"name": "cli", "host": s.target.url(""), "run_n": 2, "tasks": [{"task_class": "t.post"}]}).to_string(),
    )
    .unwrap();
    let (code, out, err) = cli(&addr, &["save", file.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("Job saved"), "{out}");
    let (_, out, _) = cli(&addr, &["jobs", "--json"]).await;
    let jobs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&jobs), ["cli"]);
    assert_eq!(jobs["cli"]["tasks"][0]["host"], json!(s.target.url("")));
    let (_, out, _) = cli(&addr, &["tasks", "--json"]).await;
    let tasks: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tasks["tasks"][0], "http.get");
    let (code, out, err) = cli(&addr, &["exec", "cli", "--param", "sc_mc=from-cli"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("t.post"), "{out}");
    assert!(s
        .target
        .seen()
        .iter()
        .all(|r| r.body == r#"{"mc":"from-cli"}"#));
    let (code, _, err) = cli(&addr, &["exec", "nope"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = cli(&addr, &["status", "--json"]).await;
    assert_eq!(code, Some(0));
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["state"], "idle");
    assert_eq!(st["last_exec"]["name"], "cli");
}

#[tokio::test]
async fn stopping_the_server_stops_and_archives_the_running_exec() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "endless", "host": s.target.url(""), "run_for_sec": 600,
               "tasks": [{"task_class": "t.ok", "sleep_min_msec": 5, "sleep_max_msec": 10}]}),
    )
    .await;
    let mut stream = s
        .client
        .exec(exec_req("endless"))
        .await
        .unwrap()
        .into_inner();
    let first = within(5, stream.message()).await.unwrap().unwrap();
    let Some(pb::exec_event::Event::Progress(p)) = first.event else {
        panic!("expected progress, got {first:?}");
    };
    let Setup { server, target, .. } = s;
    let stopping = tokio::spawn(server.stop());
    let x = within(10, async {
        loop {
            let ev = stream
                .message()
                .await
                .unwrap()
                .expect("stream ended without a report");
            if let Some(pb::exec_event::Event::Finished(x)) = ev.event {
                return x;
            }
        }
    })
    .await;
    assert_eq!(x.id, p.exec_id);
    assert!(x.aborted);
    assert_eq!(x.abort_reason, "server shutting down");
    let dir = within(10, stopping).await.unwrap();
    let server = TestServer::start_in(dir, |_| {}).await;
    let mut c = LoadRunnerClient::new(server.channel().await);
    let execs = c
        .list_execs(pb::ListExecsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .execs;
    assert_eq!(execs.len(), 1);
    assert!(execs[0].id == x.id && execs[0].aborted);
    drop(target);
}

#[tokio::test]
async fn a_staged_arrival_rate_ramps_up_through_a_real_server() {
    let mut s = setup().await;
    // 0 → 400/s over 2 s: 100 tasks finish in the first second, 300 in the second.
    let saved = save(
        &mut s.client,
        json!({"name": "ramp", "host": s.target.url(""), "n_swarm": 20, "rate_per_sec": 0,
               "stages": [{"duration_sec": 2, "target": 400}],
               "tasks": [{"task_class": "t.ok"}]}),
    )
    .await;
    assert_eq!(saved.stages.len(), 1);
    let r = run_job(&mut s.client, "ramp").await;
    let per_second: Vec<u64> = r.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["n_task"].as_u64().unwrap())
        .collect();
    assert!(per_second.len() >= 2, "{per_second:?}");
    // Real time on a shared machine: the shape, not the exact counts.
    assert!(
        (70..=130).contains(&per_second[0]) && per_second[1] > 2 * per_second[0],
        "{per_second:?}"
    );
    assert!(
        r.exec.n_task >= 390 && r.exec.n_fail == 0,
        "{}",
        r.exec.n_task
    );
    // The stages come after every Beetle key.
    let k = keys(&r.json);
    assert_eq!(&k[..BEETLE_EXEC_KEYS.len()], BEETLE_EXEC_KEYS);
    assert_eq!(k.last(), Some(&"stages"));
    assert_eq!(
        r.json["stages"],
        json!([{"duration_sec": 2, "target": 400}])
    );
}

#[tokio::test]
async fn the_cli_writes_a_self_contained_html_report_and_the_dashboard_serves_it() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({"name": "rep", "host": s.target.url(""), "run_n": 6, "n_swarm": 2,
               "tasks": [{"task_class": "t.ok", "threshold_avg_usec": 1},
                         {"task_class": "t.fail"}]}),
    )
    .await;
    let r = run_job(&mut s.client, "rep").await;
    let id = r.exec.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    let addr = s.server.addr.to_string();
    let (code, out, err) = cli(&addr, &["report", &id, "-o", file.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let page = std::fs::read_to_string(&file).unwrap();
    let fig = |k: &str, v: String| format!(r#"<b data-k="{k}">{v}</b>"#);
    for (k, v) in [
        ("n_task", r.exec.n_task.to_string()),
        ("n_success", r.exec.n_success.to_string()),
        ("n_fail", r.exec.n_fail.to_string()),
        (
            "p99_usec",
            format!("{:.3}", r.exec.p99_usec as f64 / 1000.0),
        ),
    ] {
        assert!(page.contains(&fig(k, v.clone())), "{k} = {v} missing");
    }
    assert_eq!(r.exec.n_task, 12);
    assert!(
        page.contains(r#"<tr data-task="t.ok">"#) && page.contains(r#"<tr data-task="t.fail">"#)
    );
    assert!(
        page.contains("exceeded</td>"),
        "the avg threshold is shown exceeded"
    );
    assert!(page.contains("uPlot") && page.contains(&format!(r#""id":"{id}""#)));

    // The dashboard's link serves the same page.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/ui/report/{id}", s.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(resp.text().await.unwrap(), page);
    let missing = http
        .get(format!("{}/ui/report/nope", s.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (code, _, err) = cli(&addr, &["report", "nope", "-o", file.to_str().unwrap()]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("not found"), "{err}");
}
