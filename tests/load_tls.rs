//! HTTPS load targets and webhooks: a real server (in process, or a `taskhive serve` child),
//! an HTTPS target with a throwaway CA, trust through `--load-ca` or `SSL_CERT_FILE`, HTTP/2
//! by ALPN, certificate failures named in each task's request_context.

mod common;

use std::path::Path;

use axum::http::Version;
use common::tls_target::{Pki, TlsTarget};
use common::{within, TestServer};
use serde_json::{json, Value};
use taskhive::pb::{self, load_runner_client::LoadRunnerClient};
use tonic::transport::Channel;

type Client = LoadRunnerClient<Channel>;

async fn save(c: &mut Client, job: Value) {
    c.save_load_job(pb::SaveLoadJobRequest {
        input: Some(pb::save_load_job_request::Input::JobJson(job.to_string())),
    })
    .await
    .unwrap_or_else(|e| panic!("save {job}: {e}"));
}

/// Runs `name` to the end; returns the JobExec document.
async fn run(c: &mut Client, req: pb::ExecRequest) -> Value {
    let mut stream = c.exec(req).await.unwrap().into_inner();
    within(60, async {
        loop {
            let ev = stream.message().await.unwrap().expect("stream ended early");
            if let Some(pb::exec_event::Event::Finished(exec)) = ev.event {
                return serde_json::from_str(&exec.json).unwrap();
            }
        }
    })
    .await
}

fn exec(name: &str) -> pb::ExecRequest {
    pb::ExecRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Saves and runs 2 swarms × 5 GETs of `host`.
async fn get_ten(c: &mut Client, host: &str) -> Value {
    save(
        c,
        json!({"name": "tls", "host": host, "run_n": 5, "n_swarm": 2,
               "tasks": [{"task_class": "http.get"}]}),
    )
    .await;
    run(c, exec("tls")).await
}

async fn server_trusting(ca: Option<&Path>) -> (TestServer, Client) {
    let ca = ca.map(Path::to_path_buf);
    let s = TestServer::start_with(|c| c.load.ca_file = ca).await;
    let c = LoadRunnerClient::new(s.channel().await);
    (s, c)
}

#[tokio::test]
async fn a_private_ca_given_by_load_ca_is_trusted() {
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, false).await;
    let (s, mut c) = server_trusting(Some(&pki.ca_file())).await;
    let x = get_ten(&mut c, &target.url("")).await;
    assert_eq!(x["n_success"], json!(10), "{x}");
    let first = &x["tasks"]["http.get"]["executions"][0]["request_context"];
    assert_eq!(first, &json!(format!("200 GET {}", target.url(""))));
    // The target offers http/1.1 only.
    assert_eq!(target.versions(), vec![Version::HTTP_11; 10]);
    // Pooled: at most one connection (and handshake) per swarm, not one per task.
    assert!(
        target.handshakes() <= 2,
        "{} handshakes",
        target.handshakes()
    );
    s.stop().await;
}

#[tokio::test]
async fn an_h2_target_is_reached_over_http2() {
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, true).await;
    let (s, mut c) = server_trusting(Some(&pki.ca_file())).await;
    let x = get_ten(&mut c, &target.url("/")).await;
    assert_eq!(x["n_success"], json!(10), "{x}");
    assert_eq!(target.versions(), vec![Version::HTTP_2; 10]);
    // The swarms may race to connect before h2 is known; after that, one connection serves.
    assert!(
        target.handshakes() <= 2,
        "{} handshakes",
        target.handshakes()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_every_task_naming_the_tls_error() {
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, true).await;
    let (s, mut c) = server_trusting(None).await;
    let x = get_ten(&mut c, &target.url("")).await;
    assert_eq!(
        (x["n_task"].clone(), x["n_fail"].clone()),
        (json!(10), json!(10)),
        "{x}"
    );
    for e in x["tasks"]["http.get"]["executions"].as_array().unwrap() {
        let why = e["request_context"].as_str().unwrap();
        assert!(
            why.contains("invalid peer certificate: UnknownIssuer"),
            "{why}"
        );
    }
    assert!(target.versions().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn ssl_cert_file_of_a_child_server_is_trusted() {
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, false).await;
    let data = tempfile::tempdir().unwrap();
    let ca = pki.ca_file();
    let (_child, addr) = common::child::spawn_server_with(&data.path().join("d"), &[], |cmd| {
        cmd.env("SSL_CERT_FILE", &ca);
    })
    .await;
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = LoadRunnerClient::new(ch);
    let x = get_ten(&mut c, &target.url("")).await;
    assert_eq!(x["n_success"], json!(10), "{x}");
    assert_eq!(target.versions().len(), 10);
}

#[tokio::test]
async fn an_https_webhook_receives_the_job_exec() {
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, true).await;
    let (s, mut c) = server_trusting(Some(&pki.ca_file())).await;
    save(
        &mut c,
        json!({"name": "hook", "host": target.url(""), "run_n": 3,
               "tasks": [{"task_class": "http.get"}]}),
    )
    .await;
    let mut stream = c
        .exec(pb::ExecRequest {
            webhook_url: target.url("/hook"),
            ..exec("hook")
        })
        .await
        .unwrap()
        .into_inner();
    let first = within(5, stream.message()).await.unwrap().unwrap();
    let Some(pb::exec_event::Event::Enqueued(e)) = first.event else {
        panic!("expected enqueued, got {first:?}");
    };
    let x: Value = serde_json::from_str(&target.next_hook(30).await).unwrap();
    assert_eq!(x["id"], json!(e.exec_id));
    assert_eq!(x["n_success"], json!(3));
    s.stop().await;
}

const INSECURE_TOML: &str = "[[task]]\nname = \"t.insecure\"\ninsecure_skip_verify = true\n";

#[tokio::test]
async fn skipping_verification_takes_the_class_flag_and_the_server_flag() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.toml");
    std::fs::write(&tasks, INSECURE_TOML).unwrap();

    // Without --load-insecure-tls the server refuses to start, naming the class.
    let mut config = taskhive::config::Config::new(dir.path().join("refused"));
    config.load.tasks_file = Some(tasks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = within(
        10,
        taskhive::server::run(listener, config, std::future::pending()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("task[0].insecure_skip_verify"), "{e}");
    assert!(e.contains("--load-insecure-tls"), "{e}");

    // With it, that class reaches a target whose CA nobody trusts; http.get still checks.
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, false).await;
    let s = TestServer::start_with(|c| {
        c.load.tasks_file = Some(tasks);
        c.load.insecure_tls = true;
    })
    .await;
    let mut c = LoadRunnerClient::new(s.channel().await);
    save(
        &mut c,
        json!({"name": "mixed", "host": target.url(""), "run_n": 20,
               "tasks": [{"task_class": "t.insecure"}, {"task_class": "http.get"}]}),
    )
    .await;
    let x = run(&mut c, exec("mixed")).await;
    let t = &x["tasks"];
    assert_eq!(t["t.insecure"]["n_fail"], json!(0), "{x}");
    assert_eq!(t["http.get"]["n_success"], json!(0), "{x}");
    assert!(t["t.insecure"]["n_task"].as_u64().unwrap() > 0, "{x}");
    s.stop().await;
}

#[tokio::test]
async fn the_allow_list_judges_the_address_dialled_for_https_too() {
    use taskhive::load::allow::Allow;
    let pki = Pki::new();
    let target = TlsTarget::start(&pki, false).await;
    let trust = taskhive::load::tls::Trust::load(Some(&pki.ca_file()), false).unwrap();
    let get = |allow: &str| {
        let client = taskhive::load::http::HttpClient::with_trust(
            std::sync::Arc::new(Allow::parse(allow).unwrap()),
            trust.clone(),
        );
        let url = target.url("/");
        async move {
            let req = http::Request::get(url)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            client.send(req, std::time::Duration::from_secs(10)).await
        }
    };
    let e = within(10, get("10.0.0.0/8")).await.unwrap_err();
    assert!(e.contains("not in the load-target allow-list"), "{e}");
    assert_eq!(target.handshakes(), 0);
    // Allowed by address while the certificate is checked against the name `localhost`.
    let ok = within(10, get("127.0.0.0/8,::1")).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(target.handshakes(), 1);
}
