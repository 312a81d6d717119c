//! Flow control through the real server: SetTaskLimits / GetTaskLimits over gRPC, the JSON
//! face and the CLI; bad values refused naming the field with nothing stored; limits kept
//! across a restart; `max_running` and keys seen by real Work-stream workers. (The pure
//! core's figures are in `flow_control_core.rs`; the cluster in `cluster_api.rs`.)

mod common;

use std::time::Duration;

use common::{job, task_status, within, TestServer};
use taskhive::pb;

fn limits(max_running: Option<i64>, rate: &str) -> pb::TaskLimits {
    pb::TaskLimits {
        max_running,
        rate: rate.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn limits_are_validated_stored_across_a_restart_and_shown_in_status() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let r = c
        .set_task_limits(pb::SetTaskLimitsRequest {
            task: "fl".into(),
            limits: Some(pb::TaskLimits {
                burst: Some(4),
                max_running_per_key: Some(2),
                rate_per_key: "10/m".into(),
                ..limits(Some(3), "50/s")
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let set = r.limits.unwrap();
    assert_eq!((set.max_running, set.rate.as_str()), (Some(3), "50/s"));
    // Each bad value is refused naming its field, and nothing changes.
    for (bad, field) in [
        (limits(None, "0/s"), "rate"),
        (limits(None, "10/w"), "rate"),
        (limits(Some(-1), ""), "max_running"),
        (
            pb::TaskLimits {
                rate_per_key: "ten/s".into(),
                ..Default::default()
            },
            "rate_per_key",
        ),
    ] {
        let e = c
            .set_task_limits(pb::SetTaskLimitsRequest {
                task: "fl".into(),
                limits: Some(bad),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(&format!("{field}: ")), "{e:?}");
    }
    let got = c
        .get_task_limits(pb::TaskRef { task: "fl".into() })
        .await
        .unwrap()
        .into_inner()
        .limits
        .unwrap();
    assert_eq!(got, set);
    let st = task_status(&mut c, "fl").await;
    assert_eq!(st.limits.as_ref(), Some(&set));

    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    let got = c
        .get_task_limits(pb::TaskRef { task: "fl".into() })
        .await
        .unwrap()
        .into_inner()
        .limits;
    assert_eq!(got.as_ref(), Some(&set), "after a restart");
    // Clearing stores nothing, and that too survives a restart.
    c.set_task_limits(pb::SetTaskLimitsRequest {
        task: "fl".into(),
        limits: None,
    })
    .await
    .unwrap();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let got = s
        .client()
        .await
        .get_task_limits(pb::TaskRef { task: "fl".into() })
        .await
        .unwrap()
        .into_inner()
        .limits;
    assert_eq!(got, None);
}

#[tokio::test]
async fn max_running_holds_for_work_stream_workers_and_waiting_jobs_show_in_status() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.set_task_limits(pb::SetTaskLimitsRequest {
        task: "mr".into(),
        limits: Some(limits(Some(2), "")),
    })
    .await
    .unwrap();
    for i in 0..6 {
        let mut j = job("mr", &format!("j{i}"));
        j.key = format!("acct-{}", i % 2);
        c.submit_job(j).await.unwrap();
    }
    let mut w1 = s.worker(&["mr"], 10).await;
    let mut w2 = s.worker(&["mr"], 10).await;
    let a = w1.next_job().await;
    let b = match tokio::time::timeout(Duration::from_millis(500), w1.next_job()).await {
        Ok(j) => j,
        Err(_) => w2.next_job().await,
    };
    // Two out, four held back: no third job reaches either worker.
    for w in [&mut w1, &mut w2] {
        assert!(
            tokio::time::timeout(Duration::from_millis(700), w.next_job())
                .await
                .is_err(),
            "a third job was handed out"
        );
    }
    let st = task_status(&mut c, "mr").await;
    assert_eq!(
        (st.running, st.pending, st.waiting_on_limit),
        (2, 4, 4),
        "{st:?}"
    );
    // Keys travel with the job; the two out are of different keys (round-robin).
    assert_ne!(a.key, b.key, "{} {}", a.key, b.key);
    assert!(a.key.starts_with("acct-"));
    // A report frees a slot: the next job goes out.
    w1.done(a.lease_id, b"ok").await;
    let next = within(10, async {
        tokio::select! {
            j = w1.next_job() => j,
            j = w2.next_job() => j,
        }
    })
    .await;
    assert!(next.name.starts_with('j'));
}

#[tokio::test]
async fn the_json_face_sets_limits_and_refuses_bad_ones_with_a_400_naming_the_field() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = |m: &str| format!("{}/taskhive.v1.Scheduler/{m}", s.url());
    let r = http
        .post(url("SetTaskLimits"))
        .json(&serde_json::json!({"task": "js", "limits": {"maxRunning": 4, "rate": "100/s"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let r = http
        .post(url("SetTaskLimits"))
        .json(&serde_json::json!({"task": "js", "limits": {"rate": "0/s"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("rate: "),
        "{body}"
    );
    let got: serde_json::Value = http
        .post(url("GetTaskLimits"))
        .json(&serde_json::json!({"task": "js"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["limits"]["rate"], "100/s", "{got}");
    assert_eq!(got["limits"]["maxRunning"], "4", "{got}");
    // A keyed submit through the JSON face; GetJob shows the key.
    let r = http
        .post(url("SubmitJob"))
        .json(&serde_json::json!({"task": "js", "name": "k", "key": "tenant-9"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let j: serde_json::Value = http
        .post(url("GetJob"))
        .json(&serde_json::json!({"task": "js", "name": "k"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["key"], "tenant-9", "{j}");
}

#[tokio::test]
async fn the_cli_sets_shows_and_clears_limits_and_submits_with_a_key() {
    let s = TestServer::start().await;
    let addr = s.addr.to_string();
    let run = |args: Vec<&str>| {
        let mut c = tokio::process::Command::new(common::child::bin());
        c.args(args)
            .args(["--addr", &addr])
            .env("RUST_LOG", "off")
            .kill_on_drop(true);
        async move { within(60, c.output()).await.unwrap() }
    };
    let out = run(vec![
        "limit",
        "set",
        "-f",
        "cl",
        "--max-running",
        "10",
        "--rate",
        "100/s",
        "--burst",
        "20",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let out = run(vec!["limit", "show", "-f", "cl"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cl\tmax_running=10 rate=100/s burst=20\n"
    );
    let out = run(vec!["limit", "set", "-f", "cl", "--rate", "5/fortnight"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("taskhive: invalid argument: rate: "),
        "{out:?}"
    );
    let out = run(vec!["limit", "show"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("cl\tmax_running=10 rate=100/s burst=20\t0"),
        "{text}"
    );
    let out = run(vec![
        "submit", "-f", "cl", "-n", "a", "--args", "x", "--key", "k1",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let j = s
        .client()
        .await
        .get_job(pb::JobRef {
            job_id: 0,
            task: "cl".into(),
            name: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.key, "k1");
    let out = run(vec!["limit", "clear", "-f", "cl"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = run(vec!["limit", "show", "-f", "cl"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cl\tnone\n");
}
