//! Connection hygiene and the disk watermark, against a real server on 127.0.0.1:0:
//! slow or silent connections are closed by the header-read and idle timeouts, the
//! per-address cap refuses one address while another is served, a worker's stream is never
//! idle, and a full disk refuses new jobs while stored ones still drain.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{job, metric, metrics_from, within, TestServer};
use taskhive::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How many sockets the test may open on each side: 3,000, or fewer when the process
/// cannot hold twice that many descriptors (client and server ends live in this process).
fn sockets_wanted() -> usize {
    let (soft, _) = taskhive::admission::raise_nofile_limit().expect("rlimit");
    let fit = (soft.saturating_sub(512) / 2) as usize;
    if fit < 3_000 {
        eprintln!("RLIMIT_NOFILE {soft}: testing {fit} connections instead of 3,000");
    }
    fit.min(3_000)
}

async fn connect_all(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        if !first.is_empty() {
            s.write_all(first).await.expect("write");
        }
        socks.push(s);
    }
    socks
}

/// Reads until the server closes the connection (EOF or reset); panics past `deadline`.
async fn closed_by(s: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open at the deadline"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_http1_requests_are_closed_after_the_header_timeout() {
    let n = sockets_wanted();
    let header = Duration::from_secs(1);
    let s = TestServer::start_with(|c| {
        c.net.header_read_timeout = header;
        c.net.max_connections_per_ip = 0;
    })
    .await;
    let mut socks = connect_all(s.addr, n, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    let deadline = Instant::now() + header + Duration::from_secs(2);
    for sock in &mut socks {
        closed_by(sock, deadline).await;
    }
    drop(socks);
    let m = metrics_from(s.addr, None).await;
    assert!(
        metric(
            &m,
            "taskhive_connections_timed_out_total{reason=\"header\"}"
        ) >= n as f64,
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_periodic_connections_are_closed_after_the_header_timeout() {
    let n = sockets_wanted();
    let header = Duration::from_secs(1);
    let (l, paddr) = periodic_listener().await;
    let s = TestServer::start_with(move |c| {
        c.net.header_read_timeout = header;
        c.net.max_connections_per_ip = 0;
        c.periodic.push(l);
    })
    .await;
    // Never sends its client-type byte.
    let mut socks = connect_all(paddr, n, b"").await;
    let deadline = Instant::now() + header + Duration::from_secs(2);
    for sock in &mut socks {
        closed_by(sock, deadline).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_connection_cap_is_refused_while_another_is_served() {
    const CAP: usize = 20;
    let s = TestServer::start_with(|c| c.net.max_connections_per_ip = CAP).await;
    // CAP connections from 127.0.0.1 are admitted and held.
    let held = connect_all(s.addr, CAP, b"").await;
    // The next one from the same address is closed at once, before anything is read.
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    closed_by(&mut over, Instant::now() + Duration::from_secs(5)).await;
    // 127.0.0.2 (every 127/8 address is loopback on Linux) is served, and sees the refusal
    // counted.
    let m = metrics_from(s.addr, Some("127.0.0.2")).await;
    assert_eq!(
        metric(&m, "taskhive_connections_refused_total{reason=\"per_ip\"}"),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, "taskhive_connections_open") >= (CAP + 1) as f64,
        "{m}"
    );
    // A place freed is a place taken again (once the server has noticed the closes).
    drop(held);
    within(10, async {
        loop {
            if let Ok(ch) = tonic::transport::Channel::from_shared(s.url())
                .unwrap()
                .connect()
                .await
            {
                let mut c = pb::scheduler_client::SchedulerClient::new(ch);
                if c.submit_job(job("cap", "a")).await.is_ok() {
                    return;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(500);
    let s = TestServer::start_with(|c| c.net.idle_timeout = idle).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(10, sock.read(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Keep-alive: the connection stays open after the response, until the idle timeout.
    closed_by(&mut sock, Instant::now() + idle + Duration::from_secs(3)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_stream_idle_past_the_idle_timeout_is_kept() {
    let idle = Duration::from_millis(500);
    let s = TestServer::start_with(|c| {
        c.net.idle_timeout = idle;
        c.net.keepalive_interval = Duration::from_millis(200);
        c.net.keepalive_timeout = Duration::from_millis(500);
    })
    .await;
    let mut w = s.worker(&["quiet"], 1).await;
    // The idle period itself: the stream carries nothing but pings for several timeouts.
    tokio::time::sleep(idle * 5).await;
    // A fresh client: an idle connection of its own would have been closed meanwhile.
    let mut c = s.client().await;
    c.submit_job(job("quiet", "after-idle")).await.unwrap();
    let j = w.next_job().await;
    assert_eq!(j.name, "after-idle");
    w.done(j.lease_id, b"ok").await;
    s.stop().await;
}

async fn periodic_listener() -> (taskhive::periodic::Listener, SocketAddr) {
    let l = taskhive::periodic::Listener::bind("tcp://127.0.0.1:0")
        .await
        .unwrap();
    let addr = l
        .describe()
        .strip_prefix("tcp://")
        .unwrap()
        .parse()
        .unwrap();
    (l, addr)
}

/// Connects as a Periodic client (type 1) or worker (type 2) and reads the connection id.
async fn periodic_greeted(addr: SocketAddr, kind: u8) -> TcpStream {
    use taskhive::periodic::frame;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame::encode_request(&[kind])).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    while buf.len() < 12 + 4 {
        assert_ne!(within(10, s.read_buf(&mut buf)).await.unwrap(), 0);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_periodic_client_is_closed_when_idle_while_a_quiet_worker_is_kept() {
    use taskhive::periodic::command::{encode_request, Request};
    use taskhive::periodic::frame;
    let idle = Duration::from_millis(500);
    let (l, paddr) = periodic_listener().await;
    let s = TestServer::start_with(move |c| {
        c.net.idle_timeout = idle;
        c.periodic.push(l);
    })
    .await;
    let mut worker = periodic_greeted(paddr, 2).await;
    let mut out = frame::encode_request(&encode_request(1, &Request::CanDo("pq".into()))).to_vec();
    out.extend_from_slice(&frame::encode_request(&encode_request(
        2,
        &Request::GrabJob,
    )));
    worker.write_all(&out).await.unwrap();
    let mut client = periodic_greeted(paddr, 1).await;
    closed_by(&mut client, Instant::now() + idle + Duration::from_secs(3)).await;

    // The idle period itself: the worker sends nothing for several timeouts.
    tokio::time::sleep(idle * 4).await;
    s.client()
        .await
        .submit_job(job("pq", "late"))
        .await
        .unwrap();
    let mut got = Vec::new();
    within(10, async {
        while !got.windows(4).any(|w| w == b"late") {
            let mut buf = [0u8; 1024];
            let n = worker
                .read(&mut buf)
                .await
                .expect("worker connection reset");
            assert_ne!(n, 0, "worker connection closed");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_jobs_while_stored_ones_drain() {
    // Stored while there was room.
    let s = TestServer::start_with(|c| c.min_free_disk = 0).await;
    s.client()
        .await
        .submit_job(job("drain", "before"))
        .await
        .unwrap();
    let dir = s.stop().await;

    // 1000 TB free is more than this machine has.
    let s = TestServer::start_in(dir, |c| c.min_free_disk = 1_000_000_000_000_000).await;
    let mut c = s.client().await;
    let e = c.submit_job(job("drain", "after")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().starts_with("disk almost full ("), "{e:?}");
    assert!(e.message().ends_with(" bytes free)"), "{e:?}");
    let e = c
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: vec![job("drain", "many")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // The JSON face maps the same code.
    let r = reqwest::Client::new()
        .post(format!("{}/taskhive.v1.Scheduler/SubmitJob", s.url()))
        .json(&serde_json::json!({"task": "drain", "name": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "RESOURCE_EXHAUSTED", "{body}");
    let m = metrics_from(s.addr, None).await;
    assert!(metric(&m, "taskhive_disk_free_bytes") > 0.0, "{m}");

    // The job stored before still drains: dispatched, reported, acknowledged.
    let mut w = s.worker(&["drain"], 1).await;
    let j = w.next_job().await;
    assert_eq!(j.name, "before");
    w.done(j.lease_id, b"ok").await;
    let st = common::task_status(&mut c, "drain").await;
    assert_eq!(st.pending + st.running + st.scheduled, 0, "{st:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_after_the_header_timeout() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(pki.path().join("key.pem"), key.serialize_pem()).unwrap();
    let files = taskhive::net::TlsFiles {
        cert: pki.path().join("cert.pem"),
        key: pki.path().join("key.pem"),
        client_ca: None,
    };
    let header = Duration::from_secs(1);
    let s = TestServer::start_with(move |c| {
        c.net.tls = Some(files);
        c.net.header_read_timeout = header;
    })
    .await;
    // One sends nothing; one stops inside its ClientHello record.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial
        .write_all(b"\x16\x03\x01\x02\x00\x01")
        .await
        .unwrap();
    let deadline = Instant::now() + header + Duration::from_secs(2);
    closed_by(&mut silent, deadline).await;
    closed_by(&mut partial, deadline).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_must_arrive_within_the_header_timeout_but_no_request_need_follow() {
    let header = Duration::from_millis(500);
    let s = TestServer::start_with(|c| c.net.header_read_timeout = header).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // Stops inside the preface.
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial.write_all(&preface[..16]).await.unwrap();
    // The preface and an empty SETTINGS frame, then nothing: an idle HTTP/2 connection.
    let mut quiet = TcpStream::connect(s.addr).await.unwrap();
    quiet.write_all(preface).await.unwrap();
    quiet.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    closed_by(
        &mut partial,
        Instant::now() + header + Duration::from_secs(2),
    )
    .await;
    // Well past the header timeout the quiet one is still open (its read only times out).
    tokio::time::sleep_until(Instant::now() + header * 2).await;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), quiet.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(n)) => assert_ne!(n, 0, "the quiet HTTP/2 connection was closed"),
            Ok(Err(e)) => panic!("the quiet HTTP/2 connection was reset: {e}"),
        }
    }
    let m = metrics_from(s.addr, None).await;
    assert_eq!(
        metric(
            &m,
            "taskhive_connections_timed_out_total{reason=\"header\"}"
        ),
        1.0,
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_covers_every_listener() {
    const CAP: usize = 5;
    let (l, paddr) = periodic_listener().await;
    let s = TestServer::start_with(move |c| {
        c.net.max_connections = CAP;
        c.periodic.push(l);
    })
    .await;
    // Each held connection is answered once, so it is known to be admitted.
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut sock = TcpStream::connect(s.addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = within(10, sock.read(&mut buf)).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(sock);
    }
    // Full: the Periodic listener refuses too, at once.
    let mut over = TcpStream::connect(paddr).await.unwrap();
    closed_by(&mut over, Instant::now() + Duration::from_secs(5)).await;
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    closed_by(&mut over, Instant::now() + Duration::from_secs(5)).await;
    // One place freed (the server notices the close), one connection served.
    drop(held.pop());
    let m = within(10, async {
        loop {
            let mut sock = TcpStream::connect(s.addr).await.unwrap();
            let _ = sock
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut out = Vec::new();
            let _ = sock.read_to_end(&mut out).await;
            if out.starts_with(b"HTTP/1.1 200") {
                return String::from_utf8_lossy(&out).into_owned();
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        metric(
            &m,
            "taskhive_connections_refused_total{reason=\"max_connections\"}"
        ) >= 2.0,
        "{m}"
    );
    drop(held);
    s.stop().await;
}
