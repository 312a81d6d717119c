//! PauseTask / ResumeTask on one node: a paused task keeps its jobs (across a restart),
//! hands none out, lets a running one finish, and runs them all once resumed.

mod common;

use std::time::Duration;

use common::{job, task_status, TestServer};
use taskhive::pb;

#[tokio::test]
async fn a_paused_task_stays_paused_across_a_restart_and_running_jobs_finish() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["pt"], 4).await;
    c.submit_job(job("pt", "running")).await.unwrap();
    let running = w.next_job().await;
    c.pause_task(pb::TaskRef { task: "pt".into() })
        .await
        .unwrap();
    for i in 0..10 {
        c.submit_job(job("pt", &format!("j{i}"))).await.unwrap();
    }
    // The job already out finishes; nothing else is handed out.
    w.done(running.lease_id, b"ok").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), w.next_job())
            .await
            .is_err()
    );
    let st = task_status(&mut c, "pt").await;
    assert!(st.paused && st.pending == 10, "{st:?}");
    drop(w);
    let dir = s.stop().await;

    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    let mut w = s.worker(&["pt"], 4).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), w.next_job())
            .await
            .is_err()
    );
    let st = task_status(&mut c, "pt").await;
    assert!(st.paused && st.pending == 10, "after restart: {st:?}");
    let r = c
        .resume_task(pb::TaskRef { task: "pt".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.status.unwrap().paused);
    for _ in 0..10 {
        let j = w.next_job().await;
        w.done(j.lease_id, b"ok").await;
    }
    let st = task_status(&mut c, "pt").await;
    assert!(!st.paused && st.pending == 0, "{st:?}");
}
