//! A pipelined unary gRPC driver that writes its HTTP/2 frames itself: one task per
//! connection keeps `depth` calls in flight, writes every call it can start in one write and
//! handles every answer of one read before writing again. It is the gRPC counterpart of the
//! Gearman driver (`bench/peers/gearman.rs`), which pipelines SUBMIT_JOB_BG the same way,
//! so that the submit and e2e scenarios weigh the servers rather than the clients' HTTP/2
//! machinery (`lean_grpc.rs` still goes through `h2`'s per-stream state and a task per call
//! in flight; this one spends a few hundred bytes of framing per call).
//!
//! What it does of HTTP/2 (RFC 9113), and no more: the preface and SETTINGS (acknowledging
//! the server's), PING answers, connection-level flow control both ways (stream windows are
//! far above one call), HEADERS and CONTINUATION decoded with HPACK (`loona-hpack`), DATA,
//! RST_STREAM and GOAWAY as errors. Requests go out as one HEADERS frame and one DATA frame.
//! The header blocks are built once per connection and index their fields as grpc-go's,
//! grpc-core's and `h2`'s encoders do: the first call adds them to HPACK's dynamic table,
//! every later call names each by its index in one byte (a server whose SETTINGS shrink the
//! table gets literals instead). A call's status comes from its trailers'
//! `grpc-status` and `grpc-message`, as with any gRPC client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Status;

use crate::rpc::wire;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// The window each of our streams opens with: far above any answer the bench asks for, so no
/// stream ever needs a WINDOW_UPDATE of its own.
const STREAM_WINDOW: u32 = 1 << 20;
/// The connection's receive window; a WINDOW_UPDATE goes out once half of it is used.
const CONNECTION_WINDOW: u32 = 1 << 24;
/// The largest frame we accept: our SETTINGS_MAX_FRAME_SIZE, left at the default.
const MAX_READ_FRAME: u32 = 16_384;
/// The initial window both sides start with (RFC 9113 §6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;

/// Makes `calls` unary calls of `method` (e.g. `/taskhive.v1.Scheduler/SubmitJob`) over one
/// new connection to `addr`, `depth` in flight, the `i`th with the request `make(i)`, and
/// hands each answer to `answered(i, latency, answer)`. Any call's error ends the run with
/// that call's status.
pub(crate) async fn pipelined<Q: Message, R: Message + Default>(
    addr: &str,
    method: &str,
    calls: u64,
    depth: usize,
    mut make: impl FnMut(u64) -> Q,
    mut answered: impl FnMut(u64, Duration, R),
) -> Result<(), Status> {
    let tcp = TcpStream::connect(addr).await.map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    let (mut r, mut w) = tcp.into_split();
    let mut conn = Conn::new(addr, method);
    let mut open: HashMap<u32, Call> = HashMap::with_capacity(depth);
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    while acked < calls {
        while sent < calls && open.len() < depth.min(conn.max_streams) {
            let msg = make(sent);
            let len = wire::PREFIX + msg.encoded_len();
            if len > conn.max_frame as usize || len as i64 > conn.stream_window {
                return Err(Status::internal(format!(
                    "pipelined driver: a {len}-byte request does not fit one DATA frame"
                )));
            }
            if (len as i64) > conn.send_window {
                break; // waits for the server's WINDOW_UPDATE
            }
            let id = conn.start(&msg);
            open.insert(id, Call::new(sent));
            sent += 1;
        }
        if !conn.out.is_empty() {
            w.write_all(&conn.out).await.map_err(io)?;
            conn.out.clear();
        }
        // Read until at least one frame has been handled, then handle every whole frame read.
        let mut handled = 0;
        while handled == 0 {
            rbuf.reserve(16 * 1024);
            if r.read_buf(&mut rbuf).await.map_err(io)? == 0 {
                return Err(Status::unavailable("pipelined driver: connection closed"));
            }
            while let Some(f) = Frame::parse(&mut rbuf, MAX_READ_FRAME)? {
                handled += 1;
                if let Some((id, done)) = conn.handle(f, &mut open)? {
                    let call = open.remove(&id).expect("handled only for an open stream");
                    let answer = R::decode(done).map_err(|e| Status::internal(e.to_string()))?;
                    answered(call.index, call.sent.elapsed(), answer);
                    acked += 1;
                }
            }
        }
    }
    Ok(())
}

/// One call in flight.
struct Call {
    index: u64,
    sent: Instant,
    /// The answer's DATA so far (a gRPC message behind its 5-byte prefix).
    body: BytesMut,
}

impl Call {
    fn new(index: u64) -> Call {
        Call {
            index,
            sent: Instant::now(),
            body: BytesMut::new(),
        }
    }
}

/// One received frame.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Bytes,
}

impl Frame {
    /// Takes one whole frame off the front of `buf`, or `None` until one is there.
    fn parse(buf: &mut BytesMut, max: u32) -> Result<Option<Frame>, Status> {
        if buf.len() < 9 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        if len > max {
            return Err(protocol(format!("a {len}-byte frame, above {max}")));
        }
        if buf.len() < 9 + len as usize {
            return Ok(None);
        }
        let mut head = buf.split_to(9);
        let kind = head[3];
        let flags = head[4];
        head.advance(5);
        let stream = head.get_u32() & 0x7fff_ffff;
        let payload = buf.split_to(len as usize).freeze();
        Ok(Some(Frame {
            kind,
            flags,
            stream,
            payload,
        }))
    }
}

/// The connection's state: what the server allows, what we owe it, and the bytes to write.
struct Conn {
    /// The request header blocks: the first call's, which adds its fields to the server's
    /// dynamic table, then every later call's, which names them by index.
    head: Bytes,
    indexed: Bytes,
    /// Calls started: the first sends `head`.
    started: u64,
    /// The server's SETTINGS_HEADER_TABLE_SIZE is too small for our fields: from the next
    /// block on, a size update to 0 then literals without indexing (RFC 7541 §4.2).
    shrunk: Shrunk,
    next_stream: u32,
    /// Bytes we may still send on the connection.
    send_window: i64,
    /// Bytes each new stream of ours may send (the server's SETTINGS_INITIAL_WINDOW_SIZE).
    stream_window: i64,
    max_frame: u32,
    max_streams: usize,
    /// Received DATA not yet given back with a WINDOW_UPDATE.
    unreleased: u32,
    hpack: loona_hpack::Decoder<'static>,
    /// The request header block without indexing, for a server that allows no table.
    literals: Bytes,
    /// A header block waiting for its CONTINUATION frames: stream, END_STREAM, bytes so far.
    partial: Option<(u32, bool, BytesMut)>,
    out: BytesMut,
}

impl Conn {
    fn new(addr: &str, method: &str) -> Conn {
        let mut out = BytesMut::with_capacity(64 * 1024);
        out.put_slice(PREFACE);
        let settings = [
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
        ];
        frame_head(&mut out, 6 * settings.len(), SETTINGS, 0, 0);
        for (id, v) in settings {
            out.put_u16(id);
            out.put_u32(v);
        }
        frame_head(&mut out, 4, WINDOW_UPDATE, 0, 0);
        out.put_u32(CONNECTION_WINDOW - DEFAULT_WINDOW as u32);

        // :method POST and :scheme http are in HPACK's static table (indices 3 and 6); the
        // rest are literals with incremental indexing, :path and :authority naming theirs by
        // index. Each added field becomes entry 62 and pushes the earlier ones up one, so
        // after the first block :path is 65, :authority 64, content-type 63 and te 62.
        let fields: [(Name, &[u8]); 4] = [
            (Name::Indexed(4), method.as_bytes()),
            (Name::Indexed(1), addr.as_bytes()),
            (Name::Literal(b"content-type"), b"application/grpc"),
            (Name::Literal(b"te"), b"trailers"),
        ];
        let block = |how: Literal| {
            let mut b = BytesMut::new();
            b.put_u8(0x80 | 3);
            b.put_u8(0x80 | 6);
            for (name, value) in &fields {
                literal(&mut b, how, name, value);
            }
            b.freeze()
        };
        let indexed = Bytes::from_static(&[
            0x80 | 3,
            0x80 | 6,
            0x80 | 65,
            0x80 | 64,
            0x80 | 63,
            0x80 | 62,
        ]);
        Conn {
            head: block(Literal::Indexing),
            indexed,
            started: 0,
            shrunk: Shrunk::No,
            literals: block(Literal::WithoutIndexing),
            next_stream: 1,
            send_window: DEFAULT_WINDOW,
            stream_window: DEFAULT_WINDOW,
            max_frame: 16_384,
            max_streams: usize::MAX,
            unreleased: 0,
            hpack: loona_hpack::Decoder::new(),
            partial: None,
            out,
        }
    }

    /// Writes a call of `msg` on a new stream into `out`; returns the stream's id.
    fn start(&mut self, msg: &impl Message) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        let block = match self.shrunk {
            Shrunk::No if self.started == 0 => self.head.clone(),
            Shrunk::No => self.indexed.clone(),
            Shrunk::Unsaid => {
                self.shrunk = Shrunk::Said;
                let mut b = BytesMut::with_capacity(1 + self.literals.len());
                b.put_u8(0x20);
                b.put_slice(&self.literals);
                b.freeze()
            }
            Shrunk::Said => self.literals.clone(),
        };
        self.started += 1;
        frame_head(&mut self.out, block.len(), HEADERS, END_HEADERS, id);
        self.out.put_slice(&block);
        let len = wire::PREFIX + msg.encoded_len();
        frame_head(&mut self.out, len, DATA, END_STREAM, id);
        wire::put(&mut self.out, msg);
        self.send_window -= len as i64;
        id
    }

    /// Handles one frame; returns a stream whose call ended well, with its answer message.
    fn handle(
        &mut self,
        f: Frame,
        open: &mut HashMap<u32, Call>,
    ) -> Result<Option<(u32, Bytes)>, Status> {
        if let Some((stream, end, mut block)) = self.partial.take() {
            if f.kind != CONTINUATION || f.stream != stream {
                return Err(protocol("a header block interrupted".into()));
            }
            block.extend_from_slice(&f.payload);
            if f.flags & END_HEADERS == 0 {
                self.partial = Some((stream, end, block));
                return Ok(None);
            }
            return self.headers(stream, end, &block, open);
        }
        match f.kind {
            DATA => {
                self.release(f.payload.len() as u32);
                let body = unpadded(f.flags, f.payload)?;
                let call = open
                    .get_mut(&f.stream)
                    .ok_or_else(|| protocol(format!("DATA on stream {}", f.stream)))?;
                if f.flags & END_STREAM != 0 {
                    return Err(protocol("an answer ended without trailers".into()));
                }
                call.body.extend_from_slice(&body);
                Ok(None)
            }
            HEADERS => {
                let mut block = unpadded(f.flags, f.payload)?;
                if f.flags & PRIORITY != 0 {
                    if block.len() < 5 {
                        return Err(protocol("a short HEADERS frame".into()));
                    }
                    block.advance(5);
                }
                let end = f.flags & END_STREAM != 0;
                if f.flags & END_HEADERS == 0 {
                    self.partial = Some((f.stream, end, BytesMut::from(&block[..])));
                    return Ok(None);
                }
                self.headers(f.stream, end, &block, open)
            }
            SETTINGS if f.flags & ACK == 0 => {
                self.settings(&f.payload)?;
                frame_head(&mut self.out, 0, SETTINGS, ACK, 0);
                Ok(None)
            }
            PING if f.flags & ACK == 0 => {
                frame_head(&mut self.out, f.payload.len(), PING, ACK, 0);
                self.out.put_slice(&f.payload);
                Ok(None)
            }
            WINDOW_UPDATE if f.stream == 0 => {
                let n = be_u32(&f.payload)
                    .ok_or_else(|| protocol("a short WINDOW_UPDATE".into()))?
                    & 0x7fff_ffff;
                self.send_window += i64::from(n);
                Ok(None)
            }
            RST_STREAM => {
                let code = be_u32(&f.payload).unwrap_or(0);
                Err(Status::unavailable(format!(
                    "stream {} reset by the server (HTTP/2 error {code:#x})",
                    f.stream
                )))
            }
            GOAWAY => Err(Status::unavailable(format!(
                "the server closed the connection: {}",
                String::from_utf8_lossy(f.payload.get(8..).unwrap_or_default())
            ))),
            PUSH_PROMISE => Err(protocol("a PUSH_PROMISE with push disabled".into())),
            CONTINUATION => Err(protocol("a CONTINUATION out of place".into())),
            // Acknowledgements, stream WINDOW_UPDATEs (stream windows are never short),
            // PRIORITY and unknown frames (RFC 9113 §4.1: ignored).
            _ => Ok(None),
        }
    }

    /// A whole header block on `stream`: the answer's head, or, with END_STREAM, its trailers
    /// (which end the call).
    fn headers(
        &mut self,
        stream: u32,
        end: bool,
        block: &[u8],
        open: &mut HashMap<u32, Call>,
    ) -> Result<Option<(u32, Bytes)>, Status> {
        // Every block goes through the decoder, which keeps the server's dynamic table.
        let mut http = None;
        let mut grpc = http::HeaderMap::new();
        self.hpack
            .decode_with_cb(block, |name, value| match &*name {
                b":status" => http = Some(value.into_owned()),
                b"grpc-status" | b"grpc-message" => {
                    if let (Ok(n), Ok(v)) = (
                        http::HeaderName::from_bytes(&name),
                        http::HeaderValue::from_bytes(&value),
                    ) {
                        grpc.insert(n, v);
                    }
                }
                _ => {}
            })
            .map_err(|e| protocol(format!("HPACK: {e:?}")))?;
        let call = open
            .get_mut(&stream)
            .ok_or_else(|| protocol(format!("HEADERS on stream {stream}")))?;
        if let Some(h) = http.filter(|h| h != b"200") {
            return Err(Status::unknown(format!(
                "HTTP status {}",
                String::from_utf8_lossy(&h)
            )));
        }
        if !end {
            return Ok(None);
        }
        wire::status(&grpc)?;
        let body = std::mem::take(&mut call.body).freeze();
        Ok(Some((stream, wire::one(body)?)))
    }

    /// The server's SETTINGS.
    fn settings(&mut self, mut p: &[u8]) -> Result<(), Status> {
        if !p.len().is_multiple_of(6) {
            return Err(protocol("a SETTINGS frame not of 6-byte entries".into()));
        }
        while p.has_remaining() {
            let (id, v) = (p.get_u16(), p.get_u32());
            match id {
                SETTINGS_MAX_CONCURRENT_STREAMS => self.max_streams = v as usize,
                // A change applies to the windows of streams already open too (§6.9.2), and
                // ours send their one DATA frame when they open, so only new streams care.
                SETTINGS_INITIAL_WINDOW_SIZE => self.stream_window = i64::from(v),
                SETTINGS_MAX_FRAME_SIZE => self.max_frame = v,
                // Our four fields take about 250 bytes of the table (§4.1: 32 each beyond
                // their lengths); the default is 4096.
                SETTINGS_HEADER_TABLE_SIZE if v < 1024 && self.shrunk == Shrunk::No => {
                    self.shrunk = Shrunk::Unsaid
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Counts `n` received DATA bytes; gives the connection window back once half is used.
    fn release(&mut self, n: u32) {
        self.unreleased += n;
        if self.unreleased >= CONNECTION_WINDOW / 2 {
            frame_head(&mut self.out, 4, WINDOW_UPDATE, 0, 0);
            self.out.put_u32(self.unreleased);
            self.unreleased = 0;
        }
    }
}

/// A frame's 9-byte head.
fn frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// Whether the server's dynamic table has room for our fields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shrunk {
    No,
    /// Too small; the size update is not yet sent.
    Unsaid,
    Said,
}

/// How [`literal`] asks the decoder to treat a field.
#[derive(Clone, Copy)]
enum Literal {
    /// Added to the dynamic table (RFC 7541 §6.2.1).
    Indexing,
    /// Left out of it (§6.2.2).
    WithoutIndexing,
}

/// A header field's name in [`literal`].
enum Name<'a> {
    /// An entry of HPACK's static table.
    Indexed(u8),
    Literal(&'a [u8]),
}

/// A literal header field, strings not Huffman-coded.
fn literal(out: &mut BytesMut, how: Literal, name: &Name, value: &[u8]) {
    let (first, bits) = match how {
        Literal::Indexing => (0x40, 6),
        Literal::WithoutIndexing => (0x00, 4),
    };
    match name {
        Name::Indexed(i) => integer(out, first, bits, usize::from(*i)),
        Name::Literal(n) => {
            out.put_u8(first);
            integer(out, 0x00, 7, n.len());
            out.put_slice(n);
        }
    }
    integer(out, 0x00, 7, value.len());
    out.put_slice(value);
}

/// An HPACK integer with an `n`-bit prefix after the bits `first` (RFC 7541 §5.1).
fn integer(out: &mut BytesMut, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.put_u8(first | v as u8);
        return;
    }
    out.put_u8(first | max as u8);
    v -= max;
    while v >= 128 {
        out.put_u8((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.put_u8(v as u8);
}

/// The big-endian u32 a payload starts with.
fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// A DATA or HEADERS payload without its padding.
fn unpadded(flags: u8, mut p: Bytes) -> Result<Bytes, Status> {
    if flags & PADDED == 0 {
        return Ok(p);
    }
    let pad = *p
        .first()
        .ok_or_else(|| protocol("an empty padded frame".into()))? as usize;
    if pad + 1 > p.len() {
        return Err(protocol("padding longer than its frame".into()));
    }
    p.advance(1);
    p.truncate(p.len() - pad);
    Ok(p)
}

fn protocol(what: String) -> Status {
    Status::internal(format!("pipelined driver: HTTP/2 protocol error: {what}"))
}

fn io(e: std::io::Error) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use tonic::Code;

    /// HPACK integers across the prefix boundary (RFC 7541 §C.1's examples).
    #[test]
    fn integers_are_encoded_as_rfc_7541_shows() {
        let enc = |n, v| {
            let mut b = BytesMut::new();
            integer(&mut b, 0, n, v);
            b.to_vec()
        };
        assert_eq!(enc(5, 10), [10]);
        assert_eq!(enc(5, 1337), [31, 154, 10]);
        assert_eq!(enc(8, 42), [42]);
        assert_eq!(enc(4, 15), [15, 0]);
    }

    /// The header blocks decode, in the order they go out, to the same fields every call:
    /// the first adds them to the decoder's table and the later ones index them; after a
    /// SETTINGS that shrinks the table, a size update and literals.
    /// The header block of the next call `conn` starts.
    fn next_block(conn: &mut Conn) -> Vec<u8> {
        conn.out.clear();
        conn.start(&pb::SubmitJobRequest::default());
        let len = u32::from_be_bytes([0, conn.out[0], conn.out[1], conn.out[2]]) as usize;
        conn.out[9..9 + len].to_vec()
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decoded(decoder: &mut loona_hpack::Decoder, block: &[u8]) -> Fields {
        let fields = decoder.decode(block).expect("HPACK");
        fields
            .into_iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn later_calls_name_their_headers_by_index_and_decode_the_same() {
        let mut conn = Conn::new("127.0.0.1:1", "/taskhive.v1.Scheduler/SubmitJob");
        let mut server = loona_hpack::Decoder::new();
        let want: Fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/taskhive.v1.Scheduler/SubmitJob"),
            (":authority", "127.0.0.1:1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        let first = next_block(&mut conn);
        assert_eq!(decoded(&mut server, &first), want, "the first block");
        assert!(first.len() > 60);
        for _ in 0..3 {
            let later = next_block(&mut conn);
            assert_eq!(decoded(&mut server, &later), want, "a later block");
            assert_eq!(later.len(), 6, "one byte a field");
        }

        let mut shrink = BytesMut::new();
        shrink.put_u16(SETTINGS_HEADER_TABLE_SIZE);
        shrink.put_u32(0);
        conn.settings(&shrink).unwrap();
        let update = next_block(&mut conn);
        assert_eq!(update[0], 0x20, "a size update to 0 first");
        let later = next_block(&mut conn);
        assert_eq!(&update[1..], &later[..], "then the same literals");
        let mut fresh = loona_hpack::Decoder::new();
        assert_eq!(
            decoded(&mut fresh, &later),
            want,
            "literals decode without a table"
        );
    }

    /// The driver against a real in-process server: many calls in flight answer in order of
    /// their ids, a batch call answers, and an invalid request ends the run with the server's
    /// status and message, read from the trailers.
    #[tokio::test]
    async fn pipelines_calls_to_a_real_server_and_reads_errors_from_the_trailers() {
        let server = crate::server::TestServe::start().await;
        let addr = server.addr.clone();
        let job = |name: String| pb::SubmitJobRequest {
            task: "pipelined".into(),
            name,
            args: Bytes::from_static(b"x"),
            ..Default::default()
        };

        // More calls than a connection window's worth of requests (65,535 bytes at first):
        // the driver must wait for the server's WINDOW_UPDATEs.
        let mut ids = vec![0; 3000];
        pipelined(
            &addr,
            "/taskhive.v1.Scheduler/SubmitJob",
            3000,
            16,
            |i| job(format!("j{i}-{}", "p".repeat(40))),
            |i, _, r: pb::SubmitJobResponse| ids[i as usize] = r.job_id,
        )
        .await
        .unwrap();
        assert!(ids.iter().all(|&id| id > 0), "every call answered");
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len(), "3000 jobs, 3000 ids");

        let mut batch = 0;
        pipelined(
            &addr,
            "/taskhive.v1.Scheduler/SubmitJobs",
            2,
            1,
            |i| pb::SubmitJobsRequest {
                jobs: (0..10).map(|k| job(format!("b{i}-{k}"))).collect(),
            },
            |_, _, r: pb::SubmitJobsResponse| batch += r.jobs.len(),
        )
        .await
        .unwrap();
        assert_eq!(batch, 20);

        let bad = pipelined(
            &addr,
            "/taskhive.v1.Scheduler/SubmitJob",
            5,
            4,
            |i| {
                job(if i == 3 {
                    String::new()
                } else {
                    format!("ok{i}")
                })
            },
            |_, _, _: pb::SubmitJobResponse| {},
        )
        .await
        .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().contains("name"), "names the field: {bad:?}");

        let unknown = pipelined(
            &addr,
            "/taskhive.v1.Scheduler/NoSuchMethod",
            1,
            1,
            |_| job("u".into()),
            |_, _, _: pb::SubmitJobResponse| {},
        )
        .await
        .unwrap_err();
        assert_eq!(unknown.code(), Code::Unimplemented, "{unknown:?}");

        server.stop().await;
    }
}
