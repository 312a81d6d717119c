//! A Periodic-protocol client that pipelines: requests written back to back on one
//! connection without waiting, replies matched by message id.

use std::collections::HashMap;

use bytes::BytesMut;
use taskhive::periodic::command::{encode_request, PJob, Request};
use taskhive::periodic::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a client connection to `addr` (host:port), writes `n` SUBMIT_JOBs of `task` (names
/// `p0`.., due an hour ahead; message ids 1..=n) and then a REMOVE_JOB of the last one
/// (message id n + 1) in one write, and returns each reply's command byte by message id.
pub async fn pipelined_submits_then_remove(addr: &str, task: &str, n: u32) -> HashMap<u32, u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    out.extend_from_slice(&frame::encode_request(&[1]));
    let sched_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3_600;
    for i in 0..n {
        let job = PJob {
            func: task.into(),
            name: format!("p{i}"),
            workload: Default::default(),
            sched_at,
            count: 0,
            timeout: 0,
        };
        out.extend_from_slice(&frame::encode_request(&encode_request(
            i + 1,
            &Request::SubmitJob(job),
        )));
    }
    let remove = Request::RemoveJob {
        func: task.into(),
        name: format!("p{}", n - 1),
    };
    out.extend_from_slice(&frame::encode_request(&encode_request(n + 1, &remove)));
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut replies = HashMap::new();
    let mut first = true;
    super::within(30, async {
        while replies.len() < n as usize + 1 {
            while buf.len() >= 12 {
                let len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
                if buf.len() < 12 + len {
                    break;
                }
                let p = buf.split_to(12 + len).split_off(12);
                // The first reply is the connection id.
                if std::mem::take(&mut first) {
                    continue;
                }
                let id = u32::from_be_bytes(p[..4].try_into().unwrap());
                assert!(replies.insert(id, p[4]).is_none(), "two replies to {id}");
            }
            if replies.len() == n as usize + 1 {
                break;
            }
            let got = s.read_buf(&mut buf).await.unwrap();
            assert!(got > 0, "server closed the connection");
        }
    })
    .await;
    replies
}
