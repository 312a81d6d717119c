//! Auth, TLS, the load-target allow-list and the limits, through a real server on
//! 127.0.0.1:0 and real clients (tonic, reqwest).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::target::Target;
use common::{job, within, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use taskhive::cli::conn::AuthChannel;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

const CLIENT: &str = "client-secret";
const WORKER: &str = "worker-secret";
const ADMIN: &str = "admin-secret";

/// A tokens file with one token of each role.
fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens");
    let text = format!(
        "# role sha256 name\nclient {} ci\nworker {} w1\nadmin {} ops\n",
        taskhive::auth::hash_hex(CLIENT),
        taskhive::auth::hash_hex(WORKER),
        taskhive::auth::hash_hex(ADMIN),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn auth_server() -> (TestServer, tempfile::TempDir) {
    let keep = tempfile::tempdir().unwrap();
    let file = tokens_file(keep.path());
    let s = TestServer::start_with(|c| c.auth = Some(file)).await;
    (s, keep)
}

async fn as_role(s: &TestServer, token: Option<&str>) -> SchedulerClient<AuthChannel> {
    SchedulerClient::new(AuthChannel::new(s.channel().await, token).unwrap())
}

#[tokio::test]
async fn grpc_calls_need_a_token_with_the_right_role() {
    let (s, _keep) = auth_server().await;
    let code = |r: Result<tonic::Response<pb::SubmitJobResponse>, tonic::Status>| match r {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    };
    assert_eq!(
        code(as_role(&s, None).await.submit_job(job("t", "a")).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(
            as_role(&s, Some("wrong"))
                .await
                .submit_job(job("t", "a"))
                .await
        ),
        Code::Unauthenticated
    );
    let e = as_role(&s, Some(WORKER))
        .await
        .submit_job(job("t", "a"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("needs the client role"), "{e}");
    assert_eq!(
        code(
            as_role(&s, Some(CLIENT))
                .await
                .submit_job(job("t", "a"))
                .await
        ),
        Code::Ok
    );
    // admin implies client
    assert_eq!(
        code(
            as_role(&s, Some(ADMIN))
                .await
                .submit_job(job("t", "b"))
                .await
        ),
        Code::Ok
    );

    // Admin-only: a client may not drop a task or purge the dead set; admin may.
    let drop_t = pb::DropTaskRequest { task: "t".into() };
    let e = as_role(&s, Some(CLIENT))
        .await
        .drop_task(drop_t.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let purge = pb::DeadRef::default();
    assert_eq!(
        as_role(&s, Some(WORKER))
            .await
            .purge_dead(purge)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let n = as_role(&s, Some(ADMIN))
        .await
        .drop_task(drop_t)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.removed, 2);

    // Worker calls: a client may not register; a worker's Work stream gets jobs.
    let reg = pb::RegisterTaskRequest {
        tasks: vec!["w".into()],
        capacity: 1,
        ..Default::default()
    };
    assert_eq!(
        as_role(&s, Some(CLIENT))
            .await
            .register_task(reg)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Hello(pb::WorkerHello {
            tasks: vec!["w".into()],
            capacity: 1,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut inbound = as_role(&s, Some(WORKER))
        .await
        .work(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    as_role(&s, Some(CLIENT))
        .await
        .submit_job(job("w", "x"))
        .await
        .unwrap();
    let got = within(10, async {
        loop {
            let m = inbound.message().await.unwrap().unwrap();
            if let Some(pb::server_message::Msg::Job(j)) = m.msg {
                return j;
            }
        }
    })
    .await;
    assert_eq!(got.name, "x");

    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    drop(tx);
    s.stop().await;
}

#[tokio::test]
async fn http_routes_answer_401_and_403_as_json() {
    let (s, _keep) = auth_server().await;
    let c = reqwest::Client::new();
    let base = s.url();
    let submit = format!("{base}/taskhive.v1.Scheduler/SubmitJob");
    let body = json!({"task": "t", "name": "a"});
    let call = |token: Option<&str>, req: reqwest::RequestBuilder| {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v)
        }
    };
    let (st, v) = call(None, c.post(&submit).json(&body)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], "UNAUTHENTICATED");
    let (st, v) = call(Some(WORKER), c.post(&submit).json(&body)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(v["code"], "PERMISSION_DENIED");
    let (st, _) = call(Some(CLIENT), c.post(&submit).json(&body)).await;
    assert_eq!(st, StatusCode::OK);

    // Beetle routes: reading is a client's, saving and running load jobs an admin's.
    let (st, _) = call(Some(CLIENT), c.get(format!("{base}/status"))).await;
    assert_eq!(st, StatusCode::OK);
    let job = json!({"name": "j", "host": "http://127.0.0.1:1", "run_n": 1,
                     "tasks": [{"task_class": "http.get"}]});
    let (st, _) = call(Some(CLIENT), c.post(format!("{base}/job")).json(&job)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(Some(ADMIN), c.post(format!("{base}/job")).json(&job)).await;
    assert_eq!(st, StatusCode::OK);
    // Periodic's curl API: submit is a client's, DELETE (drop) an admin's.
    let (st, _) = call(
        Some(CLIENT),
        c.post(format!("{base}/mail")).form(&[("name", "m1")]),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(Some(CLIENT), c.delete(format!("{base}/mail"))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(
        Some(CLIENT),
        c.post(format!("{base}/periodic/submit/mail/m2/")).body("x"),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = call(None, c.get(format!("{base}/metrics"))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // /quit is an admin's: a client's attempt leaves the server up.
    let (st, _) = call(Some(CLIENT), c.post(format!("{base}/quit"))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(Some(ADMIN), c.get(format!("{base}/status"))).await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn periodic_tcp_face_is_refused_with_auth_but_unix_is_allowed() {
    let keep = tempfile::tempdir().unwrap();
    let file = tokens_file(keep.path());
    let mut config = taskhive::config::Config::new(keep.path().join("data"));
    config.auth = Some(file.clone());
    config.periodic.push(
        taskhive::periodic::Listener::bind("tcp://127.0.0.1:0")
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = within(10, taskhive::server::run(listener, config, async {}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("only unix:// listeners are allowed"),
        "{e}"
    );

    let sock = keep.path().join("p.sock");
    let s = TestServer::start_with(|c| {
        c.auth = Some(file);
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        l.set_nonblocking(true).unwrap();
        c.periodic.push(taskhive::periodic::Listener::Unix(
            tokio::net::UnixListener::from_std(l).unwrap(),
            sock.clone(),
        ));
    })
    .await;
    // The unix face answers the handshake (type 1 = client) with a connection id.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut u = within(10, tokio::net::UnixStream::connect(&sock))
        .await
        .unwrap();
    let payload = [1u8];
    let mut frame = b"\0REQ".to_vec();
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    u.write_all(&frame).await.unwrap();
    let mut head = [0u8; 12];
    within(10, u.read_exact(&mut head)).await.unwrap();
    assert_eq!(&head[..4], b"\0RES");
    s.stop().await;
}

/// A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, purpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![purpose];
        (p.signed_by(&key, &ca).unwrap().pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), server_cert).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        dir,
        client_cert,
        client_key,
    }
}

impl Pki {
    fn files(&self, client_ca: bool) -> taskhive::net::TlsFiles {
        let d = self.dir.path();
        taskhive::net::TlsFiles {
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            client_ca: client_ca.then(|| d.join("ca.pem")),
        }
    }
}

async fn tls_channel(
    s: &TestServer,
    p: &Pki,
    identity: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&p.ca_pem))
        .domain_name("localhost");
    if identity {
        tls = tls.identity(Identity::from_pem(&p.client_cert, &p.client_key));
    }
    Channel::from_shared(format!("https://{}", s.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn tls_serves_grpc_and_refuses_plaintext_cleanly() {
    let p = pki();
    let s = TestServer::start_with(|c| c.net.tls = Some(p.files(false))).await;
    let mut c = SchedulerClient::new(within(10, tls_channel(&s, &p, false)).await.unwrap());
    c.submit_job(job("t", "a")).await.unwrap();

    // A plaintext client fails with an error, not a hang, and the server keeps serving.
    let plain = within(10, async {
        let ch = Channel::from_shared(s.url()).unwrap().connect().await?;
        SchedulerClient::new(ch)
            .status(pb::StatusRequest::default())
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
    .await;
    assert!(
        plain.is_err(),
        "plaintext call against a TLS port succeeded"
    );
    let st = c
        .status(pb::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.totals.unwrap().pending, 1);

    // A client that does not trust the CA is refused by its own handshake.
    let other = pki();
    assert!(within(10, tls_channel(&s, &other, false)).await.is_err());
    s.stop().await;
}

/// Over TLS too, a client still sending a body the server has refused (413) reads the
/// refusal: the lingering close reads and throws away the raw TLS records under rustls until
/// the client stops (`net/linger.rs`). The body (32 MiB) is far larger than the socket
/// buffers, so a close that did not linger would reset the client's write. Both framings:
/// a declared length (refused before it is read) and chunked (refused part-way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_still_sending_a_refused_body_reads_the_413() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let p = pki();
    let s = TestServer::start_with(|c| c.net.tls = Some(p.files(false))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(p.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    for (framing, body) in common::both_framings(32 << 20) {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = within(10, connector.connect(name, tcp)).await.unwrap();
        let head = format!(
            "POST /taskhive.v1.Scheduler/SubmitJob HTTP/1.1\r\nhost: x\r\n\
             content-type: application/json\r\n{framing}\r\n\r\n"
        );
        within(30, async {
            tls.write_all(head.as_bytes()).await?;
            tls.write_all(&body).await?;
            tls.flush().await
        })
        .await
        .unwrap_or_else(|e| panic!("{framing}: the body could not be sent: {e}"));
        let mut answer = Vec::new();
        // The server may end without a TLS close_notify once it has answered; what counts
        // is that the answer arrived whole.
        let _ = within(30, tls.read_to_end(&mut answer)).await;
        common::assert_closing_413(&answer, &framing);
    }
    s.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let p = pki();
    let s = TestServer::start_with(|c| c.net.tls = Some(p.files(true))).await;
    let with_cert = within(10, tls_channel(&s, &p, true)).await.unwrap();
    SchedulerClient::new(with_cert)
        .submit_job(job("t", "a"))
        .await
        .unwrap();
    // Without a certificate: TLS 1.3 lets the handshake finish on the client side before the
    // server's verdict, so the refusal shows at the connect or at the first call.
    let refused = within(10, async {
        let ch = tls_channel(&s, &p, false).await?;
        SchedulerClient::new(ch)
            .status(pb::StatusRequest::default())
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    s.stop().await;
}

async fn save_job(c: &reqwest::Client, base: &str, host: &str) -> (StatusCode, Value) {
    let job = json!({"name": "j", "host": host, "run_n": 1,
                     "tasks": [{"task_class": "http.get"}]});
    let r = c
        .post(format!("{base}/job"))
        .json(&job)
        .send()
        .await
        .unwrap();
    let st = r.status();
    (
        st,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn load_targets_outside_the_allow_list_are_refused() {
    let target = Target::start().await;
    let s = TestServer::start_with(|c| {
        c.load.allow = taskhive::load::allow::Allow::parse("10.0.0.0/8").unwrap()
    })
    .await;
    let c = reqwest::Client::new();
    let base = s.url();
    // An address outside the list.
    let (st, v) = save_job(&c, &base, &target.url("")).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "PERMISSION_DENIED");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("tasks[0] (http.get)") && msg.contains(&target.url("")),
        "{msg}"
    );
    // A name is judged by the address it resolves to.
    let (st, v) = save_job(&c, &base, "http://localhost:9").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("resolves to"),
        "{v}"
    );
    // gRPC says PERMISSION_DENIED too.
    let mut lc = taskhive::pb::load_runner_client::LoadRunnerClient::new(s.channel().await);
    let e = lc
        .save_load_job(pb::SaveLoadJobRequest {
            input: Some(pb::save_load_job_request::Input::JobJson(
                json!({"name": "j", "host": "http://127.0.0.1:9", "run_n": 1,
                       "tasks": [{"task_class": "http.get"}]})
                .to_string(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(target.hits("/"), 0);
    s.stop().await;
}

#[tokio::test]
async fn allowed_targets_run_and_are_checked_again_at_exec_and_connect() {
    use taskhive::load::allow::Allow;
    let target = Target::start().await;
    let port = target.addr.port();
    let s = TestServer::start_with(|c| {
        c.load.allow = Allow::parse(&format!("127.0.0.1:{port}")).unwrap();
    })
    .await;
    let c = reqwest::Client::new();
    let (st, v) = save_job(&c, &s.url(), &target.url("")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let exec = |base: String| {
        let c = c.clone();
        async move {
            c.post(format!("{base}/exec"))
                .json(&json!({"name": "j"}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = exec(s.url()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rep: Value = r.json().await.unwrap();
    assert_eq!(rep["n_success"], 1, "{rep}");
    assert_eq!(target.hits("/"), 1);

    // Restarted with a narrower list, the saved job is refused at exec.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |c| {
        c.load.allow = Allow::parse("10.0.0.0/8").unwrap();
    })
    .await;
    let r = exec(s.url()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("tasks[0] (http.get)"),
        "{v}"
    );
    assert_eq!(target.hits("/"), 1);
    s.stop().await;

    // The connector checks the address it connects to, whatever the job checks said.
    let client = taskhive::load::http::HttpClient::new(std::sync::Arc::new(
        Allow::parse("10.0.0.0/8").unwrap(),
    ));
    let req = http::Request::get(target.url("/"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let e = client.send(req, Duration::from_secs(10)).await.unwrap_err();
    assert!(e.contains("not in the load-target allow-list"), "{e}");
    assert_eq!(target.hits("/"), 1);
}

#[test]
fn with_auth_and_no_allow_list_only_loopback_is_allowed() {
    use clap::Parser;
    use taskhive::cli::{Cli, Command};
    let parse = |extra: &[&str]| {
        let mut argv = vec!["taskhive", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => taskhive::cli::serve_config(&a),
            _ => unreachable!(),
        }
    };
    use taskhive::load::allow::Allow;
    assert_eq!(parse(&[]).load.allow, Allow::Any);
    assert_eq!(parse(&["--auth", "f"]).load.allow, Allow::loopback());
    assert_eq!(
        parse(&["--auth", "f", "--load-allow", "*"]).load.allow,
        Allow::Any
    );
}

#[tokio::test]
async fn job_limits_refuse_new_jobs_and_write_nothing() {
    let s = TestServer::start_with(|c| {
        c.max_jobs_per_task = 2;
        c.max_jobs = 3;
    })
    .await;
    let mut c = s.client().await;
    c.submit_job(job("a", "1")).await.unwrap();
    c.submit_job(job("a", "2")).await.unwrap();
    let e = c.submit_job(job("a", "3")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max-jobs-per-task 2"), "{e}");
    // Replacing an existing job adds nothing and is allowed.
    let r = c.submit_job(job("a", "2")).await.unwrap().into_inner();
    assert!(r.replaced);
    c.submit_job(job("b", "1")).await.unwrap();
    let e = c.submit_job(job("b", "2")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max-jobs 3"), "{e}");
    // HTTP says 429.
    let r = reqwest::Client::new()
        .post(format!("{}/taskhive.v1.Scheduler/SubmitJob", s.url()))
        .json(&json!({"task": "c", "name": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Nothing half-written: after a restart the store holds exactly the three accepted jobs.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let st = s
        .client()
        .await
        .status(pb::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<(String, u64)> = st
        .tasks
        .iter()
        .map(|t| (t.task.clone(), t.pending))
        .collect();
    assert_eq!(names, [("a".to_string(), 2), ("b".to_string(), 1)]);
    s.stop().await;
}

#[tokio::test]
async fn worker_limit_refuses_registration() {
    let s = TestServer::start_with(|c| c.max_workers_per_task = 1).await;
    let mut c = s.client().await;
    let reg = |t: &str| pb::RegisterTaskRequest {
        tasks: vec![t.into()],
        capacity: 1,
        ..Default::default()
    };
    c.register_task(reg("t")).await.unwrap();
    let e = c.register_task(reg("t")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max-workers-per-task 1"), "{e}");
    c.register_task(reg("u")).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn message_size_limit_applies_to_grpc_and_http() {
    let s = TestServer::start_with(|c| c.limits.max_message_bytes = 4096).await;
    let mut c = s.client().await;
    let mut big = job("t", "big");
    big.args = vec![b'x'; 8192].into();
    let e = c.submit_job(big).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e}");
    let mut small = job("t", "small");
    small.args = vec![b'x'; 1024].into();
    c.submit_job(small).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/periodic/submit/t/big/", s.url()))
        .body(vec![b'x'; 8192])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    s.stop().await;
}

#[tokio::test]
async fn concurrent_streams_per_connection_are_capped() {
    let s = TestServer::start_with(|c| c.net.max_concurrent_streams = 2).await;
    let ch = s.channel().await;
    let mut c = SchedulerClient::new(ch.clone());
    c.submit_job(job("t", "a")).await.unwrap();
    let watch = || {
        let mut c = SchedulerClient::new(ch.clone());
        async move {
            c.watch_job(pb::JobRef {
                task: "t".into(),
                name: "a".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let w1 = within(10, watch()).await;
    let w2 = within(10, watch()).await;
    // Both streams are open: a third call on this connection waits for a free stream.
    let third = tokio::time::timeout(
        Duration::from_millis(500),
        c.status(pb::StatusRequest::default()),
    )
    .await;
    assert!(third.is_err(), "a third concurrent stream was accepted");
    drop(w1);
    within(10, c.status(pb::StatusRequest::default()))
        .await
        .unwrap();
    drop(w2);
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_is_per_connection_with_retry_after() {
    let s = TestServer::start_with(|c| {
        c.net.rate_per_sec = 1;
        c.net.rate_burst = 3;
    })
    .await;
    let http = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..6 {
        let r = http
            .get(format!("{}/status", s.url()))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("no request was rate limited");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "RESOURCE_EXHAUSTED");

    let mut c = s.client().await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(match c.status(pb::StatusRequest::default()).await {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        });
    }
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    // Another connection has its own bucket.
    s.client()
        .await
        .status(pb::StatusRequest::default())
        .await
        .unwrap();
    s.stop().await;
}

#[test]
fn auth_add_appends_a_hashed_line_and_prints_the_token_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let out = std::process::Command::new(common::child::bin())
        .args(["auth", "add"])
        .arg(&file)
        .args(["--role", "worker", "--name", "w1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{token}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!("worker {} w1\n", taskhive::auth::hash_hex(&token))
    );
    assert!(!text.contains(&token));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let tokens = taskhive::auth::Tokens::load(&file).unwrap();
    assert_eq!(
        tokens.lookup(&token).unwrap().role,
        taskhive::auth::Role::Worker
    );
}

#[tokio::test]
async fn cli_commands_take_a_token_and_a_ca_file() {
    let p = pki();
    let keep = tempfile::tempdir().unwrap();
    let file = tokens_file(keep.path());
    let s = TestServer::start_with(|c| {
        c.net.tls = Some(p.files(false));
        c.auth = Some(file);
    })
    .await;
    let ca = p.dir.path().join("ca.pem");
    let addr = format!("localhost:{}", s.addr.port());
    let run = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(common::child::bin());
        cmd.args([
            "submit", "-f", "t", "-n", "a", "--args", "x", "--addr", &addr,
        ])
        .args(extra)
        .env_remove("TASKHIVE_TOKEN")
        .env_remove("TASKHIVE_CA");
        async move { within(30, cmd.output()).await.unwrap() }
    };
    let ca = ca.to_str().unwrap();
    let no_token = run(&["--ca", ca]).await;
    assert!(!no_token.status.success());
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("authorization: missing"),
        "{}",
        String::from_utf8_lossy(&no_token.stderr)
    );
    let ok = run(&["--ca", ca, "--token", CLIENT]).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let job = as_role_tls(&s, &p, ADMIN).await;
    assert_eq!(job, 1);
    s.stop().await;
}

/// Pending jobs, asked over TLS with a token.
async fn as_role_tls(s: &TestServer, p: &Pki, token: &str) -> u64 {
    let ch = within(10, tls_channel(s, p, false)).await.unwrap();
    SchedulerClient::new(AuthChannel::new(ch, Some(token)).unwrap())
        .status(pb::StatusRequest::default())
        .await
        .unwrap()
        .into_inner()
        .totals
        .unwrap()
        .pending
}

#[tokio::test]
async fn loopback_default_reaches_a_target_by_the_name_localhost() {
    let target = Target::start().await;
    let s =
        TestServer::start_with(|c| c.load.allow = taskhive::load::allow::Allow::loopback()).await;
    let c = reqwest::Client::new();
    let host = format!("http://localhost:{}", target.addr.port());
    let (st, v) = save_job(&c, &s.url(), &host).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let r = c
        .post(format!("{}/exec", s.url()))
        .json(&json!({"name": "j"}))
        .send()
        .await
        .unwrap();
    let rep: Value = r.json().await.unwrap();
    // The target listens on 127.0.0.1 only: whichever order localhost resolves in, the
    // runner must fall through to the address that answers.
    assert_eq!(rep["n_success"], 1, "{rep}");
    assert_eq!(target.hits("/"), 1);
    s.stop().await;
}
