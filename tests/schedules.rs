//! Schedules (cron) on one node: firing with a real worker, pause and resume, restarts,
//! missed ticks, validation.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::TestServer;
use taskhive::pb;

fn every(name: &str, cron: &str, task: &str, missed: pb::MissedTicks) -> pb::CreateScheduleRequest {
    pb::CreateScheduleRequest {
        name: name.into(),
        cron: cron.into(),
        task: task.into(),
        args: b"tick".to_vec().into(),
        missed: missed as i32,
        ..Default::default()
    }
}

fn assert_unique(names: &[String]) {
    let set: HashSet<&String> = names.iter().collect();
    assert_eq!(set.len(), names.len(), "a tick ran twice: {names:?}");
}

#[tokio::test]
async fn a_schedule_every_two_seconds_fires_three_or_four_times_in_seven_seconds() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["cron"], 4).await;
    let created = c
        .create_schedule(every("two", "*/2 * * * * *", "cron", pb::MissedTicks::Skip))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.next_fire_ms.len(), 5);
    let names = w.run_for(7).await;
    assert!((3..=4).contains(&names.len()), "{names:?}");
    assert_unique(&names);
    assert!(names.iter().all(|n| n.starts_with("two@")), "{names:?}");
    let shown = c
        .get_schedule(pb::ScheduleRef { name: "two".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&shown.last_job, names.last().unwrap());
    let listed = c
        .list_schedules(pb::ListSchedulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schedules.len(), 1);
}

#[tokio::test]
async fn a_paused_schedule_fires_nothing_and_fires_again_once_resumed() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["cron"], 4).await;
    c.create_schedule(every("p", "* * * * * *", "cron", pb::MissedTicks::All))
        .await
        .unwrap();
    let r = c
        .pause_schedule(pb::ScheduleRef { name: "p".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.paused);
    // A tick may have fired before the pause.
    let _ = w.run_for(1).await;
    let paused = w.run_for(3).await;
    assert!(paused.is_empty(), "fired while paused: {paused:?}");
    c.resume_schedule(pb::ScheduleRef { name: "p".into() })
        .await
        .unwrap();
    let resumed = w.run_for(3).await;
    // The paused time is not caught up, even with `all`.
    assert!((2..=4).contains(&resumed.len()), "{resumed:?}");
    assert_unique(&resumed);
    c.delete_schedule(pb::ScheduleRef { name: "p".into() })
        .await
        .unwrap();
    let _ = w.run_for(1).await;
    assert!(w.run_for(2).await.is_empty());
    let e = c
        .get_schedule(pb::ScheduleRef { name: "p".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_schedule_still_fires_after_a_restart() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create_schedule(every("r", "* * * * * *", "cron", pb::MissedTicks::Skip))
        .await
        .unwrap();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut w = s.worker(&["cron"], 4).await;
    let names = w.run_for(3).await;
    assert!(names.len() >= 2, "{names:?}");
    assert_unique(&names);
}

#[tokio::test]
async fn missed_one_gives_exactly_one_catch_up_job_after_five_missed_ticks() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create_schedule(every("m", "* * * * * *", "cron", pb::MissedTicks::One))
        .await
        .unwrap();
    let mut w = s.worker(&["cron"], 4).await;
    let before = w.run_for(2).await;
    drop(w);
    let dir = s.stop().await;
    // Every tick the old server fired is before this.
    let stopped_at = common::now_ms();
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    // Restart just after a second begins, so the newest missed tick is before `started_at`.
    let wait = (1_100 - common::now_ms() % 1000) % 1000;
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let started_at = common::now_ms();
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut w = s.worker(&["cron"], 4).await;
    let after = w.run_for(2).await;
    assert!(!before.is_empty());
    assert_unique(&after);
    // Jobs for ticks inside the downtime: exactly one (the newest missed tick).
    let tick_of = |n: &str| chrono_ms(n.strip_prefix("m@").unwrap());
    let in_downtime = after
        .iter()
        .filter(|n| tick_of(n) <= started_at && tick_of(n) > stopped_at)
        .count();
    assert_eq!(in_downtime, 1, "after: {after:?}");
}

fn chrono_ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn a_bad_expression_or_zone_is_refused_naming_the_field_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let e = c
        .create_schedule(every("bad", "61 * * * *", "t", pb::MissedTicks::Skip))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("cron"), "{}", e.message());
    let mut r = every("bad", "* * * * *", "t", pb::MissedTicks::Skip);
    r.tz = "Mars/Olympus".into();
    let e = c.create_schedule(r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("tz"), "{}", e.message());
    let listed = c
        .list_schedules(pb::ListSchedulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.schedules.is_empty());
}
