//! Load agents end to end: a real server, three `taskhive agent` processes (the binary), a
//! local HTTP target, gRPC, the JSON face and the CLI.

mod common;

use std::process::Stdio;

use common::target::Target;
use common::{within, TestServer};
use serde_json::{json, Value};
use taskhive::pb::{self, load_runner_client::LoadRunnerClient};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

type Client = LoadRunnerClient<Channel>;

/// `t.agent` sleeps as long as the agent running it says (`--param agent_ms=N`), so each
/// agent's latencies are its own; `t.flaky` fails every `error_every`-th request.
const TASKS_TOML: &str = r#"
[[task]]
name = "t.agent"
path = "/delay/{{agent_ms}}"

[[task]]
name = "t.flaky"
path = "/flaky"
"#;

struct Setup {
    server: TestServer,
    target: Target,
    client: Client,
    _tasks_dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let tasks_dir = tempfile::tempdir().unwrap();
    let tasks = tasks_dir.path().join("tasks.toml");
    std::fs::write(&tasks, TASKS_TOML).unwrap();
    let target = Target::start().await;
    let server = TestServer::start_with(|c| c.load.tasks_file = Some(tasks)).await;
    let client = LoadRunnerClient::new(server.channel().await);
    Setup {
        server,
        target,
        client,
        _tasks_dir: tasks_dir,
    }
}

/// A `taskhive agent` child and the id the server gave it.
struct Agent {
    child: Child,
    id: String,
}

/// Starts `taskhive agent` against `s` and waits for its "connected" line.
async fn agent(s: &Setup, extra: &[&str]) -> Agent {
    let (child, mut ids) = agent_at(&[s.server.addr], extra).await;
    Agent {
        child,
        id: ids.remove(0),
    }
}

/// Starts `taskhive agent` with a stream to each of `servers` and waits until every one is
/// connected; returns the child and the id each server gave it, in the order of `servers`.
async fn agent_at(servers: &[std::net::SocketAddr], extra: &[&str]) -> (Child, Vec<String>) {
    let mut cmd = Command::new(common::child::bin());
    cmd.args(["agent", "--once"]);
    for s in servers {
        cmd.args(["--server", &s.to_string()]);
    }
    let mut child = cmd
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // "agent ID connected to ADDR", one per server, in whatever order they connect.
    let mut ids = std::collections::HashMap::new();
    while ids.len() < servers.len() {
        let line = within(30, lines.next_line())
            .await
            .unwrap()
            .expect("the agent printed nothing");
        let (id, addr) = line
            .strip_prefix("agent ")
            .and_then(|l| l.split_once(" connected to "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        ids.insert(addr.to_string(), id.to_string());
    }
    // Keep reading, so the agent never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ids = servers
        .iter()
        .map(|s| ids[&s.to_string()].clone())
        .collect();
    (child, ids)
}

/// Three agents whose `t.agent` requests take 2, 10 and 30 ms.
async fn three_agents(s: &Setup) -> Vec<Agent> {
    let mut v = Vec::new();
    for ms in [2, 10, 30] {
        v.push(agent(s, &["--param", &format!("agent_ms={ms}")]).await);
    }
    v
}

async fn save(c: &mut Client, job: Value) {
    c.save_load_job(pb::SaveLoadJobRequest {
        input: Some(pb::save_load_job_request::Input::JobJson(job.to_string())),
    })
    .await
    .unwrap_or_else(|e| panic!("save {job}: {e}"));
}

fn on_agents(name: &str, agents: pb::exec_request::Agents) -> pb::ExecRequest {
    pb::ExecRequest {
        name: name.into(),
        // The agents' own values win; this one only satisfies the server's param check.
        params: [("agent_ms".to_string(), "1".to_string())].into(),
        agents: Some(agents),
        ..Default::default()
    }
}

/// Progress events and the finished JobExec (as JSON); `on_progress` sees each event.
async fn run(
    c: &mut Client,
    req: pb::ExecRequest,
    mut on_progress: impl FnMut(&pb::ExecProgress),
) -> (Vec<pb::ExecProgress>, Value) {
    let mut stream = c.exec(req).await.unwrap().into_inner();
    within(90, async {
        let mut progress = Vec::new();
        loop {
            let ev = stream.message().await.unwrap().expect("stream ended early");
            match ev.event.unwrap() {
                pb::exec_event::Event::Progress(p) => {
                    on_progress(&p);
                    progress.push(p);
                }
                pb::exec_event::Event::Finished(x) => {
                    return (progress, serde_json::from_str(&x.json).unwrap());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The exact quantile of `xs` as an HDR histogram defines it: the smallest sample with at
/// least `q` of the samples at or below it.
fn exact_quantile(xs: &mut [u64], q: f64) -> u64 {
    xs.sort_unstable();
    let rank = ((q * xs.len() as f64).ceil() as usize).max(1);
    xs[rank - 1]
}

/// Per agent entry: the executions of its swarms (agents get consecutive swarm ranges in
/// the order listed).
fn by_agent<'a>(exec: &'a Value, task: &str) -> Vec<Vec<&'a Value>> {
    let mut first = 1;
    let runs = exec["tasks"][task]["executions"].as_array().unwrap();
    exec["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let range = first..first + u(&a["swarms"]);
            first = range.end;
            runs.iter()
                .filter(|r| range.contains(&u(&r["swarm_id"])))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn three_agents_split_thirty_swarms_and_the_server_merges_their_histograms() {
    let mut s = setup().await;
    let agents = three_agents(&s).await;
    save(
        &mut s.client,
        json!({
            "name": "spread", "host": s.target.url(""), "n_swarm": 30, "run_n": 20,
            "tasks": [{"task_class": "t.agent", "threshold_avg_usec": 12_000}],
        }),
    )
    .await;
    let (progress, x) = run(
        &mut s.client,
        on_agents("spread", pb::exec_request::Agents::AgentsN(3)),
        |_| {},
    )
    .await;

    // Every agent took part with a third of the swarms, and n_task is the sum of theirs.
    let entries = x["agents"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>()
    );
    assert!(entries
        .iter()
        .all(|a| u(&a["swarms"]) == 10 && a["lost"] == false));
    assert!(entries
        .iter()
        .all(|a| a["addr"].as_str().unwrap().starts_with("127.0.0.1:")));
    let sum: u64 = entries.iter().map(|a| u(&a["n_task"])).sum();
    assert_eq!(u(&x["n_task"]), 600);
    assert_eq!(sum, 600);
    assert_eq!(
        s.target.hits("/delay/2") + s.target.hits("/delay/10") + s.target.hits("/delay/30"),
        600
    );
    assert!(x["aborted"] == false && u(&x["n_fail"]) == 0);

    // Each agent's latencies are its own (its share ran with its own agent_ms).
    let t = &x["tasks"]["t.agent"];
    for (runs, floor) in by_agent(&x, "t.agent")
        .iter()
        .zip([2_000u64, 10_000, 30_000])
    {
        assert_eq!(runs.len(), 200);
        assert!(runs.iter().all(|r| u(&r["elapsed_usec"]) >= floor));
    }

    // The executions list holds every sample (under the cap), so the merged percentiles can
    // be checked against the exact ones: equal within HDR's 3 significant digits.
    let mut all: Vec<u64> = t["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| u(&r["elapsed_usec"]))
        .collect();
    assert_eq!(all.len(), 600);
    let max = *all.iter().max().unwrap();
    for (key, q) in [("p50_usec", 0.5), ("p90_usec", 0.9), ("p99_usec", 0.99)] {
        let exact = exact_quantile(&mut all, q);
        let merged = u(&t[key]);
        let tolerance = exact / 1000 + 1;
        assert!(
            merged.abs_diff(exact) <= tolerance,
            "{key}: merged {merged}, exact {exact}"
        );
        assert_eq!(u(&x[key]), merged, "one task: overall = per task");
    }
    assert_eq!(u(&t["max_usec"]), max);
    assert_eq!(u(&t["tot_usec"]), all.iter().sum::<u64>());
    // The p99 is the slowest agent's, which no average of per-agent figures would give.
    assert!(u(&t["p99_usec"]) >= 30_000);
    // Judged on the merged average (~14 ms: 2, 10 and 30 ms in equal parts).
    assert!(t["threshold_avg_exceeded"] == true && x["threshold_exceeded"] == true);

    // The timeline and the live progress are the merged figures too.
    let timeline: u64 = x["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u(&p["n_task"]))
        .sum();
    assert_eq!(timeline, 600);
    assert!(progress.windows(2).all(|w| w[0].n_task <= w[1].n_task));
    drop(agents);
}

#[tokio::test]
async fn a_failure_limit_no_agent_reaches_alone_stops_the_merged_run() {
    let mut s = setup().await;
    let agents = three_agents(&s).await;
    // Every 5th request fails: each agent's share of 400 runs fails at most 80 times (never
    // 100 alone), while the three together pass 100 about a second in (~24 runs a second
    // per swarm), before the swarms are through.
    s.target
        .state
        .error_every
        .store(5, std::sync::atomic::Ordering::Relaxed);
    save(
        &mut s.client,
        json!({
            "name": "flaky", "host": s.target.url(""), "n_swarm": 30, "run_n": 40,
            "tasks": [{"task_class": "t.flaky", "sleep_min_msec": 40, "sleep_max_msec": 40}],
        }),
    )
    .await;
    let mut req = on_agents("flaky", pb::exec_request::Agents::AgentsAll(true));
    req.max_failure_count = 100;
    // The agents would log every failure (on the test's stderr).
    req.report_failures = Some(false);
    let (_, x) = run(&mut s.client, req, |_| {}).await;
    assert_eq!(x["aborted"], true, "{x}");
    assert_eq!(x["abort_reason"], "max_failure_count 100 reached");
    assert!(u(&x["n_fail"]) >= 100);
    let per_agent: Vec<usize> = by_agent(&x, "t.flaky")
        .iter()
        .map(|runs| runs.iter().filter(|r| r["is_success"] == false).count())
        .collect();
    assert_eq!(per_agent.len(), 3);
    assert!(per_agent.iter().all(|&f| f < 100), "{per_agent:?}");
    assert_eq!(per_agent.iter().sum::<usize>() as u64, u(&x["n_fail"]));
    // Stopped early: the agents were told to abort.
    assert!(u(&x["n_task"]) < 1200, "{}", x["n_task"]);
    let sum: u64 = x["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| u(&a["n_task"]))
        .sum();
    assert_eq!(sum, u(&x["n_task"]));
    drop(agents);
}

#[tokio::test]
async fn a_killed_agent_is_named_lost_and_what_it_reported_is_kept() {
    let mut s = setup().await;
    let mut agents = three_agents(&s).await;
    save(
        &mut s.client,
        json!({
            "name": "long", "host": s.target.url(""), "n_swarm": 30, "run_for_sec": 4,
            // Sleeps keep every agent's runs under the executions cap, so all are listed.
            "tasks": [{"task_class": "t.agent", "sleep_min_msec": 20, "sleep_max_msec": 20}],
        }),
    )
    .await;
    let victim = agents[2].id.clone();
    let mut killed = false;
    // Killed once the run is 2.5 s in: every agent has sent its reports of seconds 1 and 2.
    let (_, x) = run(
        &mut s.client,
        on_agents("long", pb::exec_request::Agents::AgentsAll(true)),
        |p| {
            if !killed && p.elapsed_usec >= 2_500_000 {
                killed = true;
                // SIGKILL: no goodbye on the stream, as when a machine dies.
                agents[2].child.start_kill().unwrap();
            }
        },
    )
    .await;
    assert!(killed, "the run ended before 2.5 s");
    assert_eq!(x["aborted"], false, "the run goes on with the others");
    let entries = x["agents"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for a in entries {
        let lost = a["id"] == victim.as_str();
        assert_eq!(a["lost"], lost, "{a}");
        assert!(u(&a["n_task"]) > 0, "{a}");
    }
    let sum: u64 = entries.iter().map(|a| u(&a["n_task"])).sum();
    assert_eq!(sum, u(&x["n_task"]));
    // The lost agent's runs are in the statistics as far as it reported them.
    let runs = by_agent(&x, "t.agent");
    assert_eq!(runs[2].len() as u64, u(&entries[2]["n_task"]));
    assert!(runs[2].iter().all(|r| u(&r["elapsed_usec"]) >= 30_000));
    // The others ran to the time limit, about 4 s of 10 ms tasks for the 10 ms agent, while
    // the lost one stopped reporting at about 2.5 s of 30 ms tasks.
    assert!(u(&entries[1]["n_task"]) > u(&entries[2]["n_task"]));
    let _ = within(10, agents[2].child.wait()).await;
}

#[tokio::test]
async fn agents_are_asked_for_over_json_and_the_cli_and_refused_when_too_few() {
    let mut s = setup().await;
    save(
        &mut s.client,
        json!({
            "name": "small", "host": s.target.url(""), "n_swarm": 4, "run_n": 5,
            "tasks": [{"task_class": "t.agent"}],
        }),
    )
    .await;
    let http = reqwest::Client::new();
    let exec = |body: Value| {
        let http = http.clone();
        let url = format!("{}/exec", s.server.url());
        async move {
            let r = http.post(url).body(body.to_string()).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // No agent yet: refused before anything runs, saying how many are connected.
    let (code, body) =
        exec(json!({"name": "small", "params": {"agent_ms": "1"}, "agents": "all"})).await;
    assert_eq!(code, 412, "{body}");
    assert!(body.contains("agents: all asked, 0 connected"), "{body}");
    let err = s
        .client
        .exec(on_agents("small", pb::exec_request::Agents::AgentsN(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("1 asked, 0 connected"),
        "{}",
        err.message()
    );
    let (code, body) = exec(json!({"name": "small", "agents": 0})).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("agents: 0 must be >= 1"), "{body}");

    let two = [
        agent(&s, &["--param", "agent_ms=2"]).await,
        agent(&s, &["--param", "agent_ms=2"]).await,
    ];
    let (code, body) =
        exec(json!({"name": "small", "params": {"agent_ms": "1"}, "agents": 3})).await;
    assert_eq!(code, 412, "{body}");
    assert!(body.contains("agents: 3 asked, 2 connected"), "{body}");

    // The JSON face: every connected agent.
    let (code, body) =
        exec(json!({"name": "small", "params": {"agent_ms": "1"}, "agents": "all"})).await;
    assert_eq!(code, 200, "{body}");
    let x: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&String> = x.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.last().unwrap().as_str(),
        "agents",
        "appended after every other key"
    );
    assert_eq!(x["agents"].as_array().unwrap().len(), 2);
    assert_eq!(u(&x["n_task"]), 20);

    // The CLI: one agent of the two.
    let addr = s.server.addr.to_string();
    let out = common::child::cli_ok(&[
        "load",
        "exec",
        "small",
        "--agents",
        "1",
        "--json",
        "--param",
        "agent_ms=1",
        "--addr",
        &addr,
    ])
    .await;
    let x: Value = serde_json::from_str(&out).unwrap();
    let entries = x["agents"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], two[0].id.as_str());
    assert_eq!(u(&entries[0]["swarms"]), 4);
    assert_eq!(u(&x["n_task"]), 20);

    // Without agents: today's in-process run, no agents key.
    let (code, body) = exec(json!({"name": "small", "params": {"agent_ms": "1"}})).await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("\"agents\""), "{body}");
    drop(two);
}

#[tokio::test]
async fn in_a_cluster_an_agent_streams_to_every_node_and_serves_an_exec_on_any() {
    let db = tokio::task::spawn_blocking(common::pg::fresh_db)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for id in ["n0", "n1"] {
        let args = [
            "--store",
            db.url.as_str(),
            "--node-id",
            id,
            "--claim-ttl",
            "2s",
        ];
        nodes.push(common::child::spawn_server(&tmp.path().join(id), &args).await);
    }
    let addrs: Vec<std::net::SocketAddr> = nodes.iter().map(|(_, a)| *a).collect();
    let target = Target::start().await;
    let agents = [agent_at(&addrs, &[]).await, agent_at(&addrs, &[]).await];
    for (n, addr) in addrs.iter().enumerate() {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = LoadRunnerClient::new(ch);
        save(
            &mut c,
            json!({
                "name": format!("on-n{n}"), "host": target.url("/delay/2"), "n_swarm": 4,
                "run_n": 5, "tasks": [{"task_class": "http.get"}],
            }),
        )
        .await;
        let asked = if n == 0 {
            pb::exec_request::Agents::AgentsN(2)
        } else {
            pb::exec_request::Agents::AgentsAll(true)
        };
        let req = pb::ExecRequest {
            name: format!("on-n{n}"),
            agents: Some(asked),
            ..Default::default()
        };
        let (_, x) = run(&mut c, req, |_| {}).await;
        // The node that took the Exec ran it on both agents, under its own ids for them.
        let ids: Vec<&str> = x["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [agents[0].1[n].as_str(), agents[1].1[n].as_str()],
            "{x}"
        );
        assert!(x["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| u(&a["swarms"]) == 2 && u(&a["n_task"]) == 10 && a["lost"] == false));
        assert_eq!(u(&x["n_task"]), 20);
    }
    assert_eq!(target.hits("/delay/2"), 40);
    drop(agents);
    drop(nodes);
}

#[tokio::test]
async fn an_agent_needs_the_role_that_runs_executions() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "worker {} w1\nadmin {} ops\n",
            taskhive::auth::hash_hex("worker-secret"),
            taskhive::auth::hash_hex("admin-secret"),
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| c.auth = Some(tokens)).await;
    let addr = server.addr.to_string();
    // Refused for good: the agent exits at once instead of reconnecting forever.
    let out = within(
        30,
        Command::new(common::child::bin())
            .args(["agent", "--server", &addr, "--token", "worker-secret"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs the admin role"), "{err}");
    let out = within(
        30,
        Command::new(common::child::bin())
            .args(["agent", "--server", &addr])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authorization"));
    // With an admin token it is welcomed.
    let (child, ids) = agent_at(&[server.addr], &["--token", "admin-secret"]).await;
    assert_eq!(ids, ["a1"]);
    drop(child);
}

#[tokio::test]
async fn an_arrival_rate_is_split_across_agents_by_their_swarms() {
    let mut s = setup().await;
    let agents = [
        agent(&s, &["--param", "agent_ms=1"]).await,
        agent(&s, &["--param", "agent_ms=1", "--capacity", "6"]).await,
    ];
    save(
        &mut s.client,
        json!({
            "name": "rate", "host": s.target.url(""), "n_swarm": 30, "rate_per_sec": 300,
            "run_for_sec": 2, "tasks": [{"task_class": "t.agent"}],
        }),
    )
    .await;
    let (_, x) = run(
        &mut s.client,
        on_agents("rate", pb::exec_request::Agents::AgentsAll(true)),
        |_| {},
    )
    .await;
    let entries = x["agents"].as_array().unwrap();
    // The second agent takes at most 6 swarms, so 6/30 of the rate: 60/s of 300/s.
    assert_eq!(
        entries.iter().map(|a| u(&a["swarms"])).collect::<Vec<_>>(),
        [24, 6]
    );
    let near = |got: u64, want: f64| (got as f64 - want).abs() <= want * 0.1;
    assert!(near(u(&x["n_task"]), 600.0), "{}", x["n_task"]);
    assert!(near(u(&entries[0]["n_task"]), 480.0), "{}", entries[0]);
    assert!(near(u(&entries[1]["n_task"]), 120.0), "{}", entries[1]);
    assert_eq!(x["rate_per_sec"], 300.0, "the JobExec shows the job's rate");
    drop(agents);
}

#[tokio::test]
async fn a_silent_agent_is_counted_lost_and_a_count_limited_run_still_ends() {
    let mut s = setup().await;
    let agents = [
        agent(&s, &["--param", "agent_ms=1"]).await,
        agent(&s, &["--param", "agent_ms=1"]).await,
    ];
    // No time limit: without the silence rule the run would wait for the stopped agent.
    save(
        &mut s.client,
        json!({
            "name": "count", "host": s.target.url(""), "n_swarm": 4, "run_n": 30,
            "tasks": [{"task_class": "t.agent", "sleep_min_msec": 100, "sleep_max_msec": 100}],
        }),
    )
    .await;
    let pid = agents[1].child.id().unwrap().to_string();
    let mut stopped = false;
    let (_, x) = run(
        &mut s.client,
        on_agents("count", pb::exec_request::Agents::AgentsAll(true)),
        |p| {
            // Both agents have reported (second 1) by the progress event of second 2.
            if !stopped && p.elapsed_usec >= 1_500_000 {
                stopped = true;
                // SIGSTOP: the connection stays open, nothing more is sent.
                let st = std::process::Command::new("kill")
                    .args(["-STOP", &pid])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        },
    )
    .await;
    assert!(stopped);
    let entries = x["agents"].as_array().unwrap();
    assert_eq!(entries[0]["lost"], false, "{x}");
    assert_eq!(u(&entries[0]["n_task"]), 60);
    assert_eq!(entries[1]["lost"], true, "{x}");
    let silent = u(&entries[1]["n_task"]);
    assert!(silent > 0 && silent < 60, "{silent}");
    assert_eq!(u(&x["n_task"]), 60 + silent);
    assert_eq!(x["aborted"], false);
    // Ended by the silence rule: about 10 s after the agent's last report.
    let elapsed = u(&x["elapsed_usec"]);
    assert!((10_000_000..30_000_000).contains(&elapsed), "{elapsed}");
    drop(agents);
}
