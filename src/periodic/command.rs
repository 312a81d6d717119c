//! Periodic commands: decoding requests and encoding replies and jobs (aio-periodic 1.0.0's
//! wire format, read from its source and haskell-periodic's protocol notes).

use bytes::{BufMut, Bytes, BytesMut};

/// Command bytes.
#[allow(missing_docs)]
pub mod code {
    pub const NOOP: u8 = 0;
    pub const GRAB_JOB: u8 = 1;
    pub const SCHED_LATER: u8 = 2;
    pub const WORK_DONE: u8 = 3;
    pub const WORK_FAIL: u8 = 4;
    pub const JOB_ASSIGN: u8 = 5;
    pub const NO_JOB: u8 = 6;
    pub const CAN_DO: u8 = 7;
    pub const CANT_DO: u8 = 8;
    pub const PING: u8 = 9;
    pub const PONG: u8 = 10;
    pub const SLEEP: u8 = 11;
    pub const UNKNOWN: u8 = 12;
    pub const SUBMIT_JOB: u8 = 13;
    pub const STATUS: u8 = 14;
    pub const DROP_FUNC: u8 = 15;
    pub const SUCCESS: u8 = 16;
    pub const REMOVE_JOB: u8 = 17;
    pub const BROADCAST: u8 = 21;
    pub const CONFIG_GET: u8 = 22;
    pub const CONFIG_SET: u8 = 23;
    pub const CONFIG: u8 = 24;
    pub const RUN_JOB: u8 = 25;
    pub const ACQUIRED: u8 = 26;
    pub const ACQUIRE: u8 = 27;
    pub const RELEASE: u8 = 28;
    pub const NO_WORKER: u8 = 29;
    pub const DATA: u8 = 30;
    pub const RECV_DATA: u8 = 31;
    pub const WORK_DATA: u8 = 32;
    pub const JOB_ASSIGNED: u8 = 33;
}

/// A job as Periodic encodes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PJob {
    /// Task.
    pub func: String,
    /// Job name.
    pub name: String,
    /// Payload.
    pub workload: Bytes,
    /// Unix seconds; 0 = now.
    pub sched_at: i64,
    /// Times rescheduled.
    pub count: i32,
    /// Lease in seconds; 0 = server default.
    pub timeout: i32,
}

/// A job handle: Periodic names a running job by its func and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle {
    /// Task.
    pub func: String,
    /// Job name.
    pub name: String,
}

/// One request after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    Noop,
    GrabJob,
    SchedLater {
        handle: Handle,
        delay: i64,
        step: u16,
    },
    WorkDone {
        handle: Handle,
        data: Bytes,
    },
    WorkFail {
        handle: Handle,
    },
    CanDo(String),
    CantDo(String),
    Broadcast(String),
    Ping,
    Sleep,
    SubmitJob(PJob),
    Status,
    DropFunc(String),
    RemoveJob {
        func: String,
        name: String,
    },
    ConfigGet(String),
    ConfigSet(String, i32),
    RunJob(PJob),
    Acquire {
        name: String,
        count: u16,
        handle: Handle,
    },
    Release {
        name: String,
        handle: Handle,
    },
    RecvData(PJob),
    WorkData {
        handle: Handle,
        data: Bytes,
    },
    JobAssigned,
}

/// Why a request could not be read; answered with UNKNOWN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The payload ended inside a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Not a command this server knows.
    #[error("unknown command {0}")]
    Unknown(u8),
    /// A name is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        if self.0.len() < n {
            return Err(ParseError::Truncated(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, ParseError> {
        Ok(i64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn str8(&mut self, what: &'static str) -> Result<String, ParseError> {
        let n = self.u8(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| ParseError::NotUtf8(what))
    }
    fn bytes32(&mut self, what: &'static str) -> Result<Bytes, ParseError> {
        let n = self.u32(what)? as usize;
        Ok(Bytes::copy_from_slice(self.take(n, what)?))
    }
    fn rest(&mut self) -> Bytes {
        let b = Bytes::copy_from_slice(self.0);
        self.0 = &[];
        b
    }
    fn handle(&mut self) -> Result<Handle, ParseError> {
        Ok(Handle {
            func: self.str8("handle func")?,
            name: self.str8("handle name")?,
        })
    }
    fn job(&mut self) -> Result<PJob, ParseError> {
        let func = self.str8("job func")?;
        let name = self.str8("job name")?;
        let workload = self.bytes32("job workload")?;
        let sched_at = self.i64("job sched_at")?;
        let ver = self.u8("job version")?;
        let count = if ver & 1 != 0 {
            self.u32("job count")? as i32
        } else {
            0
        };
        let timeout = if ver & 2 != 0 {
            self.u32("job timeout")? as i32
        } else {
            0
        };
        Ok(PJob {
            func,
            name,
            workload,
            sched_at,
            count,
            timeout,
        })
    }
}

/// Splits a payload into its msgid and request.
pub fn parse(payload: &[u8]) -> Result<([u8; 4], Request), ([u8; 4], ParseError)> {
    let mut r = Reader(payload);
    let msgid: [u8; 4] = match r.take(4, "msgid") {
        Ok(m) => m.try_into().expect("4"),
        Err(e) => return Err(([0; 4], e)),
    };
    parse_body(&mut r)
        .map(|req| (msgid, req))
        .map_err(|e| (msgid, e))
}

fn parse_body(r: &mut Reader<'_>) -> Result<Request, ParseError> {
    use code::*;
    Ok(match r.u8("command")? {
        NOOP => Request::Noop,
        GRAB_JOB => Request::GrabJob,
        SCHED_LATER => Request::SchedLater {
            handle: r.handle()?,
            delay: r.i64("delay")?,
            step: r.u16("count step")?,
        },
        WORK_DONE => Request::WorkDone {
            handle: r.handle()?,
            data: r.rest(),
        },
        WORK_FAIL => Request::WorkFail {
            handle: r.handle()?,
        },
        CAN_DO => Request::CanDo(r.str8("func")?),
        CANT_DO => Request::CantDo(r.str8("func")?),
        BROADCAST => Request::Broadcast(r.str8("func")?),
        PING => Request::Ping,
        SLEEP => Request::Sleep,
        SUBMIT_JOB => Request::SubmitJob(r.job()?),
        STATUS => Request::Status,
        DROP_FUNC => Request::DropFunc(r.str8("func")?),
        REMOVE_JOB => Request::RemoveJob {
            func: r.str8("func")?,
            name: r.str8("name")?,
        },
        CONFIG_GET => Request::ConfigGet(r.str8("config key")?),
        CONFIG_SET => Request::ConfigSet(r.str8("config key")?, r.u32("config value")? as i32),
        RUN_JOB => Request::RunJob(r.job()?),
        ACQUIRE => Request::Acquire {
            name: r.str8("lock name")?,
            count: r.u16("lock count")?,
            handle: r.handle()?,
        },
        RELEASE => Request::Release {
            name: r.str8("lock name")?,
            handle: r.handle()?,
        },
        RECV_DATA => Request::RecvData(r.job()?),
        WORK_DATA => Request::WorkData {
            handle: r.handle()?,
            data: r.rest(),
        },
        JOB_ASSIGNED => Request::JobAssigned,
        other => return Err(ParseError::Unknown(other)),
    })
}

fn put_str8(out: &mut BytesMut, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

/// Encodes a job the way `Job.build` in aio-periodic reads it.
pub fn encode_job(out: &mut BytesMut, j: &PJob) {
    put_str8(out, &j.func);
    put_str8(out, &j.name);
    out.put_u32(j.workload.len() as u32);
    out.put_slice(&j.workload);
    out.put_i64(j.sched_at);
    // aio-periodic only sets a field's bit when it is positive; any non-zero value is kept
    // here so that decode(encode(job)) == job for every job the decoder accepts.
    let ver = u8::from(j.count != 0) | (u8::from(j.timeout != 0) << 1);
    out.put_u8(ver);
    if j.count != 0 {
        out.put_u32(j.count as u32);
    }
    if j.timeout != 0 {
        out.put_u32(j.timeout as u32);
    }
}

/// A reply payload: msgid, command byte, body.
pub fn reply(msgid: [u8; 4], cmd: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_slice(&msgid);
    out.put_u8(cmd);
    out.put_slice(body);
    out.freeze()
}

/// Encodes a request (clients; used by tests and fuzzing).
pub fn encode_request(msgid: u32, req: &Request) -> Bytes {
    use code::*;
    let mut out = BytesMut::new();
    out.put_u32(msgid);
    let handle = |out: &mut BytesMut, h: &Handle| {
        put_str8(out, &h.func);
        put_str8(out, &h.name);
    };
    match req {
        Request::Noop => out.put_u8(NOOP),
        Request::GrabJob => out.put_u8(GRAB_JOB),
        Request::SchedLater {
            handle: h,
            delay,
            step,
        } => {
            out.put_u8(SCHED_LATER);
            handle(&mut out, h);
            out.put_i64(*delay);
            out.put_u16(*step);
        }
        Request::WorkDone { handle: h, data } => {
            out.put_u8(WORK_DONE);
            handle(&mut out, h);
            out.put_slice(data);
        }
        Request::WorkFail { handle: h } => {
            out.put_u8(WORK_FAIL);
            handle(&mut out, h);
        }
        Request::CanDo(f) | Request::CantDo(f) | Request::Broadcast(f) | Request::DropFunc(f) => {
            out.put_u8(match req {
                Request::CanDo(_) => CAN_DO,
                Request::CantDo(_) => CANT_DO,
                Request::Broadcast(_) => BROADCAST,
                _ => DROP_FUNC,
            });
            put_str8(&mut out, f);
        }
        Request::Ping => out.put_u8(PING),
        Request::Sleep => out.put_u8(SLEEP),
        Request::SubmitJob(j) | Request::RunJob(j) | Request::RecvData(j) => {
            out.put_u8(match req {
                Request::SubmitJob(_) => SUBMIT_JOB,
                Request::RunJob(_) => RUN_JOB,
                _ => RECV_DATA,
            });
            encode_job(&mut out, j);
        }
        Request::Status => out.put_u8(STATUS),
        Request::RemoveJob { func, name } => {
            out.put_u8(REMOVE_JOB);
            put_str8(&mut out, func);
            put_str8(&mut out, name);
        }
        Request::ConfigGet(k) => {
            out.put_u8(CONFIG_GET);
            put_str8(&mut out, k);
        }
        Request::ConfigSet(k, v) => {
            out.put_u8(CONFIG_SET);
            put_str8(&mut out, k);
            out.put_u32(*v as u32);
        }
        Request::Acquire {
            name,
            count,
            handle: h,
        } => {
            out.put_u8(ACQUIRE);
            put_str8(&mut out, name);
            out.put_u16(*count);
            handle(&mut out, h);
        }
        Request::Release { name, handle: h } => {
            out.put_u8(RELEASE);
            put_str8(&mut out, name);
            handle(&mut out, h);
        }
        Request::WorkData { handle: h, data } => {
            out.put_u8(WORK_DATA);
            handle(&mut out, h);
            out.put_slice(data);
        }
        Request::JobAssigned => out.put_u8(JOB_ASSIGNED),
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let h = Handle {
            func: "f".into(),
            name: "n".into(),
        };
        let reqs = vec![
            Request::SubmitJob(PJob {
                func: "random_print".into(),
                name: "Hello world!".into(),
                workload: Bytes::from_static(b"w"),
                sched_at: 1_700_000_000,
                count: 3,
                timeout: 10,
            }),
            Request::SchedLater {
                handle: h.clone(),
                delay: 5,
                step: 1,
            },
            Request::WorkDone {
                handle: h.clone(),
                data: Bytes::from_static(b"res"),
            },
            Request::Acquire {
                name: "l".into(),
                count: 2,
                handle: h.clone(),
            },
            Request::ConfigSet("timeout".into(), 30),
            Request::Status,
        ];
        for (i, r) in reqs.into_iter().enumerate() {
            let b = encode_request(i as u32, &r);
            let (msgid, back) = parse(&b).unwrap();
            assert_eq!(u32::from_be_bytes(msgid), i as u32);
            assert_eq!(back, r);
        }
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        assert!(parse(b"\0\0").is_err());
        assert_eq!(
            parse(b"\0\0\0\x01\xfe").unwrap_err().1,
            ParseError::Unknown(0xfe)
        );
        assert!(matches!(
            parse(b"\0\0\0\x01\x0d\x05ab").unwrap_err().1,
            ParseError::Truncated(_)
        ));
        assert_eq!(
            parse(b"\0\0\0\x01\x07\x02\xff\xfe").unwrap_err().1,
            ParseError::NotUtf8("func")
        );
    }
}
