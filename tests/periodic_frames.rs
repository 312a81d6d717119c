//! The Periodic face keeps each connection independent: malformed frames close (or get
//! UNKNOWN on) their own connection while another connection keeps working.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use taskhive::periodic::command::{code, encode_request, PJob, Request};
use taskhive::periodic::frame;
use taskhive::periodic::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Conn {
    s: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(addr: &str, kind: u8) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Conn {
            s,
            buf: BytesMut::new(),
        };
        c.raw(&frame::encode_request(&[kind])).await;
        let id = c.frame().await.expect("connection id");
        assert_eq!(id.len(), 4);
        c
    }

    async fn raw(&mut self, b: &[u8]) {
        self.s.write_all(b).await.unwrap();
    }

    async fn send(&mut self, msgid: u32, r: &Request) {
        let f = frame::encode_request(&encode_request(msgid, r));
        self.raw(&f).await;
    }

    /// The next response payload, or None when the server closed the connection.
    async fn frame(&mut self) -> Option<Bytes> {
        within(10, async {
            loop {
                if self.buf.len() >= 12 {
                    assert_eq!(&self.buf[..4], frame::MAGIC_RES);
                    let len = u32::from_be_bytes(self.buf[4..8].try_into().unwrap()) as usize;
                    if self.buf.len() >= 12 + len {
                        let f = self.buf.split_to(12 + len).freeze();
                        return Some(f.slice(12..));
                    }
                }
                match self.s.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    async fn ping(&mut self, msgid: u32) {
        self.send(msgid, &Request::Ping).await;
        let r = self.frame().await.expect("pong");
        assert_eq!(&r[..4], &msgid.to_be_bytes());
        assert_eq!(r[4], code::PONG);
    }
}

async fn server() -> (TestServer, String) {
    let l = Listener::bind("tcp://127.0.0.1:0").await.unwrap();
    let addr = l.describe().trim_start_matches("tcp://").to_string();
    let s = TestServer::start_with(move |c| c.periodic.push(l)).await;
    (s, addr)
}

#[tokio::test]
async fn malformed_frames_only_hurt_their_own_connection() {
    let (_s, addr) = server().await;
    let mut good = Conn::open(&addr, 1).await;
    good.ping(1).await;

    // Unknown command: UNKNOWN with the same msgid, connection stays open.
    let mut c = Conn::open(&addr, 1).await;
    c.raw(&frame::encode_request(b"\0\0\0\x07\xee")).await;
    let r = c.frame().await.unwrap();
    assert_eq!((&r[..4], r[4]), (&7u32.to_be_bytes()[..], code::UNKNOWN));
    // A truncated command body: UNKNOWN too.
    c.raw(&frame::encode_request(b"\0\0\0\x08\x0d\x05ab")).await;
    assert_eq!(c.frame().await.unwrap()[4], code::UNKNOWN);
    c.ping(9).await;

    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", b"\0XYZ\0\0\0\x01\0\0\0\0\x09".to_vec()),
        ("bad crc", {
            let mut f = frame::encode_request(b"\0\0\0\x01\x09").to_vec();
            let n = f.len();
            f[n - 1] ^= 0xff;
            f
        }),
        ("over the length limit", {
            let mut f = b"\0REQ".to_vec();
            f.extend_from_slice(&u32::MAX.to_be_bytes());
            f.extend_from_slice(&[0; 4]);
            f
        }),
        ("bad client type", frame::encode_request(&[9]).to_vec()),
    ];
    for (what, bytes) in bad_frames {
        let mut c = Conn::open(&addr, 1).await;
        if what == "bad client type" {
            // Needs a fresh connection without the handshake.
            c = Conn {
                s: TcpStream::connect(&addr).await.unwrap(),
                buf: BytesMut::new(),
            };
        }
        c.raw(&bytes).await;
        assert!(
            c.frame().await.is_none(),
            "{what}: connection should be closed"
        );
        good.ping(2).await;
    }
    // Truncated: half a frame, then the client goes away.
    let mut t = Conn::open(&addr, 1).await;
    t.raw(&frame::encode_request(b"\0\0\0\x01\x09")[..7]).await;
    drop(t);
    good.ping(3).await;
}

#[tokio::test]
async fn raw_worker_and_client_round_trip() {
    let (s, addr) = server().await;
    let mut w = Conn::open(&addr, 2).await;
    w.send(1, &Request::CanDo("raw".into())).await;
    assert_eq!(w.frame().await.unwrap()[4], code::SUCCESS);
    w.send(2, &Request::GrabJob).await;
    assert_eq!(w.frame().await.unwrap()[4], code::SUCCESS);
    let mut c = Conn::open(&addr, 1).await;
    let job = PJob {
        func: "raw".into(),
        name: "n1".into(),
        workload: Bytes::from_static(b"w"),
        sched_at: 0,
        count: 0,
        timeout: 5,
    };
    c.send(10, &Request::SubmitJob(job)).await;
    assert_eq!(c.frame().await.unwrap()[4], code::SUCCESS);
    let assign = w.frame().await.unwrap();
    assert_eq!(
        (&assign[..4], assign[4]),
        (&2u32.to_be_bytes()[..], code::JOB_ASSIGN)
    );
    // The job is visible over gRPC as running.
    let mut g = s.client().await;
    assert_eq!(task_status(&mut g, "raw").await.running, 1);
    let handle = taskhive::periodic::command::Handle {
        func: "raw".into(),
        name: "n1".into(),
    };
    w.send(
        3,
        &Request::WorkDone {
            handle: handle.clone(),
            data: Bytes::new(),
        },
    )
    .await;
    assert_eq!(w.frame().await.unwrap()[4], code::SUCCESS);
    // Done twice: the handle is no longer held.
    w.send(
        4,
        &Request::WorkDone {
            handle,
            data: Bytes::new(),
        },
    )
    .await;
    assert_eq!(w.frame().await.unwrap()[4], code::UNKNOWN);
    assert_eq!(task_status(&mut g, "raw").await.running, 0);
    c.send(11, &Request::Status).await;
    let st = c.frame().await.unwrap();
    assert_eq!(st[4], code::DATA);
    assert_eq!(&st[5..], b"raw,1,0,0,0,0");
}

/// What each refusal looks like on the Periodic protocol, which has room for only one of them:
/// no worker is NO_WORKER (the reason, not a guess from the message); a stale handle is
/// UNKNOWN; a drop with workers present is SUCCESS with the jobs kept, as in Periodic.
#[tokio::test]
async fn refusals_answer_by_reason() {
    let (s, addr) = server().await;
    let pjob = |name: &str, sched_at: i64| PJob {
        func: "why".into(),
        name: name.into(),
        workload: Bytes::from_static(b"w"),
        sched_at,
        count: 0,
        timeout: 5,
    };
    let mut c = Conn::open(&addr, 1).await;
    // No worker.
    c.send(1, &Request::RunJob(pjob("r", 0))).await;
    let r = c.frame().await.expect("run job reply");
    assert_eq!((&r[..4], r[4]), (&1u32.to_be_bytes()[..], code::NO_WORKER));

    // Stale lease: a WORK_DONE for a job this worker does not hold.
    let mut w = Conn::open(&addr, 2).await;
    w.send(
        2,
        &Request::WorkDone {
            handle: taskhive::periodic::command::Handle {
                func: "why".into(),
                name: "r".into(),
            },
            data: Bytes::new(),
        },
    )
    .await;
    let r = w.frame().await.expect("work done reply");
    assert_eq!(r[4], code::UNKNOWN);

    // Workers present: success, and the job stays.
    w.send(3, &Request::CanDo("why".into())).await;
    assert_eq!(w.frame().await.expect("can do reply")[4], code::SUCCESS);
    c.send(4, &Request::SubmitJob(pjob("later", now_ms() / 1000 + 600)))
        .await;
    assert_eq!(c.frame().await.expect("submit reply")[4], code::SUCCESS);
    c.send(5, &Request::DropFunc("why".into())).await;
    assert_eq!(c.frame().await.expect("drop reply")[4], code::SUCCESS);
    let mut g = s.client().await;
    assert_eq!(task_status(&mut g, "why").await.scheduled, 1);
    w.ping(6).await;
}

/// 300 SUBMIT_JOBs written back to back on one connection (more than the 64 a connection may
/// have in flight), then a REMOVE_JOB of the last: every one is answered SUCCESS, all are
/// stored, and the remove, sent before the submits were answered, still comes after its
/// submit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_submits_are_all_stored_and_a_later_remove_comes_after_them() {
    let (s, addr) = server().await;
    let replies = common::periodic::pipelined_submits_then_remove(&addr, "pipe", 300).await;
    assert!(replies.values().all(|c| *c == code::SUCCESS), "{replies:?}");
    let mut c = s.client().await;
    assert_eq!(task_status(&mut c, "pipe").await.scheduled, 299);
    assert_no_job(&mut c, "pipe", "p299").await;
}
