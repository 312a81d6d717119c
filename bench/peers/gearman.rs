//! A small Gearman binary-protocol driver, so `bench/compare-gearmand` can load gearmand with
//! the same shape as the taskhive scenarios: clients pipeline SUBMIT_JOB_BG, workers pipeline
//! GRAB_JOB_UNIQ and answer WORK_COMPLETE at once.
//!
//! Protocol: every packet is a 12-byte header (`\0REQ` or `\0RES`, type, length; big endian)
//! then NUL-separated arguments, the last of which may hold any bytes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use taskhive::cli::bench::{gather_latencies, hist, result, BenchArgs, BenchResult, BoxError};

const CAN_DO: u32 = 1;
const PRE_SLEEP: u32 = 4;
const NOOP: u32 = 6;
const JOB_CREATED: u32 = 8;
const NO_JOB: u32 = 10;
const WORK_COMPLETE: u32 = 13;
const ERROR: u32 = 19;
const SUBMIT_JOB_BG: u32 = 18;
const GRAB_JOB_UNIQ: u32 = 30;
const JOB_ASSIGN_UNIQ: u32 = 31;

/// GRAB_JOB_UNIQ requests a worker keeps in flight (the analogue of Work-stream capacity).
const GRABS_IN_FLIGHT: usize = 32;

fn packet(out: &mut Vec<u8>, kind: u32, args: &[&[u8]]) {
    let len: usize = args.iter().map(|a| a.len()).sum::<usize>() + args.len().saturating_sub(1);
    out.extend_from_slice(b"\0REQ");
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(a);
    }
}

/// Reads one response packet: its type and body.
async fn read_packet<R: AsyncReadExt + Unpin>(
    r: &mut R,
    body: &mut Vec<u8>,
) -> Result<u32, BoxError> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).await?;
    if &head[..4] != b"\0RES" {
        return Err(format!("gearman: bad magic {:?}", &head[..4]).into());
    }
    let kind = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    body.resize(len, 0);
    r.read_exact(body).await?;
    if kind == ERROR {
        return Err(format!("gearman error: {}", String::from_utf8_lossy(body)).into());
    }
    Ok(kind)
}

/// One client connection submits `n` background jobs keeping `depth` in flight; returns ack latencies.
async fn submit_conn(
    addr: String,
    func: String,
    prefix: String,
    n: u64,
    depth: usize,
    payload: usize,
    base: Option<Instant>,
) -> Result<hdrhistogram::Histogram<u64>, BoxError> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let mut h = hist();
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(depth);
    let mut out = Vec::with_capacity(256 * depth);
    let mut body = Vec::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < n {
        while sent < n && sent_at.len() < depth {
            let mut data = match base {
                // e2e: the first 8 bytes carry the submit time, for submit → worker latency.
                Some(b) => (b.elapsed().as_micros() as u64).to_le_bytes().to_vec(),
                None => Vec::new(),
            };
            data.resize(payload.max(data.len()), b'x');
            let unique = format!("{prefix}-{sent}");
            packet(
                &mut out,
                SUBMIT_JOB_BG,
                &[func.as_bytes(), unique.as_bytes(), &data],
            );
            sent_at.push_back(Instant::now());
            sent += 1;
        }
        // Pipelining: write only once every answer already received is handled.
        if !out.is_empty() && r.buffer().is_empty() {
            w.write_all(&out).await?;
            w.flush().await?;
            out.clear();
        }
        let kind = read_packet(&mut r, &mut body).await?;
        if kind != JOB_CREATED {
            return Err(format!("gearman: expected JOB_CREATED, got packet {kind}").into());
        }
        let t = sent_at
            .pop_front()
            .ok_or("gearman: unsolicited JOB_CREATED")?;
        h.record(t.elapsed().as_micros().max(1) as u64).ok();
        acked += 1;
    }
    Ok(h)
}

/// One `submit_conn` task per `--clients`, each submitting its share of `--jobs`; job
/// unique ids start with `prefix` and the client's number.
fn submitters(
    a: &BenchArgs,
    addr: &str,
    func: &str,
    prefix: &str,
    payload: usize,
    base: Option<Instant>,
) -> Vec<tokio::task::JoinHandle<Result<hdrhistogram::Histogram<u64>, BoxError>>> {
    let per = a.jobs / a.clients as u64;
    (0..a.clients)
        .map(|k| {
            tokio::spawn(submit_conn(
                addr.to_string(),
                func.to_string(),
                format!("{prefix}{k}"),
                per,
                a.pipeline,
                payload,
                base,
            ))
        })
        .collect()
}

/// Clients submit background jobs as fast as JOB_CREATED comes back (gearmand's ack).
pub async fn submit(a: &BenchArgs, addr: &str, label: &str) -> Result<BenchResult, BoxError> {
    let per = a.jobs / a.clients as u64;
    let func = format!("bench-submit-{}", std::process::id());
    let start = Instant::now();
    let tasks = submitters(a, addr, &func, "", a.payload, None);
    let mut h = hist();
    for t in tasks {
        h.add(t.await??).ok();
    }
    let took = start.elapsed();
    Ok(result(
        &format!("{label} submit"),
        per * a.clients as u64,
        took,
        &h,
    ))
}

/// A worker: keeps GRAB_JOB_UNIQ requests in flight, completes each job at once.
async fn worker(
    addr: String,
    func: String,
    base: Instant,
    lat: mpsc::UnboundedSender<u64>,
    done: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let mut out = Vec::new();
    packet(&mut out, CAN_DO, &[func.as_bytes()]);
    for _ in 0..GRABS_IN_FLIGHT {
        packet(&mut out, GRAB_JOB_UNIQ, &[]);
    }
    let mut in_flight = GRABS_IN_FLIGHT;
    let mut sleeping = false;
    let mut body = Vec::new();
    loop {
        if !out.is_empty() && r.buffer().is_empty() {
            w.write_all(&out).await?;
            w.flush().await?;
            out.clear();
        }
        let kind = read_packet(&mut r, &mut body).await?;
        match kind {
            JOB_ASSIGN_UNIQ => {
                in_flight -= 1;
                // handle \0 function \0 unique \0 data
                let mut parts = body.splitn(4, |b| *b == 0);
                let handle = parts.next().unwrap_or_default().to_vec();
                let data = parts.nth(2).unwrap_or_default();
                if data.len() >= 8 {
                    let sent = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
                    let _ = lat.send((base.elapsed().as_micros() as u64).saturating_sub(sent));
                }
                packet(&mut out, WORK_COMPLETE, &[&handle, b""]);
                packet(&mut out, GRAB_JOB_UNIQ, &[]);
                in_flight += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            NO_JOB => {
                in_flight -= 1;
                if in_flight == 0 && !sleeping {
                    packet(&mut out, PRE_SLEEP, &[]);
                    sleeping = true;
                }
            }
            NOOP => {
                sleeping = false;
                while in_flight < GRABS_IN_FLIGHT {
                    packet(&mut out, GRAB_JOB_UNIQ, &[]);
                    in_flight += 1;
                }
            }
            other => return Err(format!("gearman worker: unexpected packet {other}").into()),
        }
    }
}

/// Clients submit while 4 workers complete jobs at once; latency is submit → worker.
pub async fn e2e(a: &BenchArgs, addr: &str, label: &str) -> Result<BenchResult, BoxError> {
    let base = Instant::now();
    let func = format!("bench-e2e-{}", std::process::id());
    let done = Arc::new(AtomicU64::new(0));
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<u64>();
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(tokio::spawn(worker(
            addr.to_string(),
            func.clone(),
            base,
            lat_tx.clone(),
            done.clone(),
        )));
    }
    let per = a.jobs / a.clients as u64;
    let total = per * a.clients as u64;
    let start = Instant::now();
    let tasks = submitters(a, addr, &func, "e", a.payload.max(8), Some(base));
    for t in tasks {
        t.await??;
    }
    let Some(h) = gather_latencies(&mut lat_rx, total).await else {
        // A worker's own error says more than the timeout.
        for w in workers {
            if w.is_finished() {
                w.await??;
            }
        }
        return Err("gearman e2e: workers stopped receiving jobs".into());
    };
    let took = start.elapsed();
    for w in workers {
        w.abort();
    }
    Ok(result(&format!("{label} e2e"), total, took, &h))
}
