#!/usr/bin/env python3
"""Splits a `perf script` dump of the in-process bench (DWARF call chains) by the part of
taskhive that spent the CPU: the HTTP/2 layer (h2, hyper), the calls (rpc, unary_calls,
tonic), the actor, the store (SQLite writer and fsync threads), the connection tasks, the
tokio runtime and the bench's own client. Reads the dump on stdin; prints each part's share
of all samples, in user space and in the kernel.

A sample under any frame of the bench's own code is the client's (its Work-stream workers
use h2 too). Any other sample goes to the part nearest its leaf: the call chain is walked
from the leaf up and the first frame of an owning crate decides, so a memcpy or a malloc is
charged to whoever called it, and a kernel sample (a socket write, a page fault) to the
user-space code that entered the kernel. Shared helpers (core, alloc, std, bytes, http,
prost, tokio's channels and sockets...) own nothing. Used by bench/cpu-shares;
`--self-test` checks the rules on a small dump.
"""

import re
import sys
from collections import Counter

CLIENT = "bench client"
# (part, pattern on the first non-helper path in a frame's symbol), first match wins.
OWNERS = [
    ("store (SQLite writer, fsync)", re.compile(r"^(taskhive::store|rusqlite|sqlite3)")),
    (CLIENT, re.compile(r"^(taskhive::cli|taskhive_bench)")),
    ("actor (scheduler core)", re.compile(r"^taskhive::scheduler")),
    ("calls (decode, validate, answer)", re.compile(r"^(taskhive::rpc|taskhive::server|tonic)")),
    ("HTTP/2 (h2, hyper)", re.compile(r"^(h2|hyper|hyper_util)(::|$)")),
    ("connection tasks (taskhive::net)", re.compile(r"^taskhive::net")),
    ("tokio runtime", re.compile(r"^tokio::runtime")),
]
# Threads that are all one part whatever their frames say.
THREADS = {
    "taskhive-store": "store (SQLite writer, fsync)",
    "taskhive-sync": "store (SQLite writer, fsync)",
    "taskhive-disk": "store (SQLite writer, fsync)",
}
PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+|sqlite3[A-Za-z0-9_]*")
HELPERS = re.compile(
    r"^(core|alloc|std|futures_util|futures_core|futures_channel|bytes|http|http_body|"
    r"http_body_util|tower|tower_service|tower_layer|tracing|tracing_core|pin_project_lite|"
    r"slab|hashbrown|indexmap|smallvec|parking_lot|parking_lot_core|prost|taskhive::pb|"
    r"taskhive::metrics|prometheus|tokio::sync|tokio::io|tokio::net|tokio::task|tokio::loom|"
    r"tokio::util)(::|$)"
)


def owner_of(symbol):
    """The part a frame's symbol belongs to, or None for a helper or an unknown frame."""
    for path in PATH.findall(symbol):
        if HELPERS.match(path):
            continue
        for part, pattern in OWNERS:
            if pattern.match(path):
                return part
        return None
    return None


def samples(lines):
    """(thread name, frames leaf first as (symbol, in kernel)) for each sample."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                continue
            rest = parts[1]
            kernel = rest.endswith("([kernel.kallsyms])")
            symbol = rest.rsplit(" (", 1)[0]
            frames.append((symbol, kernel))
    if comm is not None:
        yield comm, frames


def split(lines):
    """{(part, in kernel): samples} and the number of samples."""
    shares = Counter()
    total = 0
    for comm, frames in samples(lines):
        if not frames:
            continue
        total += 1
        kernel = frames[0][1]
        part = THREADS.get(comm)
        if part is None:
            owners = [p for p in (owner_of(s) for s, k in frames if not k) if p is not None]
            if CLIENT in owners:
                # The bench's own tasks (its h2 worker streams too) run under its frames;
                # the server's tasks never do.
                part = CLIENT
            else:
                part = owners[0] if owners else "other (unattributed)"
        shares[(part, kernel)] += 1
    return shares, total


# A dump in `perf script -F comm,ip,sym,dso` form: a memcpy under h2, a socket write entered
# from the connection's task, the store's thread, the bench's h2 worker, and a sample of
# helpers alone.
SAMPLE = """tokio-rt-worker
\t    7f01 __memmove_avx512_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5501 bytes::bytes_mut::BytesMut::extend_from_slice (inlined)
\t    5502 h2::codec::framed_write::Encoder<B>::buffer (/t/taskhive)
\t    5503 taskhive::net::connection::{{closure}} (/t/taskhive)
\t    5504 tokio::runtime::task::raw::poll (/t/taskhive)

tokio-rt-worker
\tffffffff81 tcp_sendmsg_locked ([kernel.kallsyms])
\t    7f02 __GI___writev (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5505 <tokio::net::tcp::stream::TcpStream as tokio::io::AsyncWrite>::poll_write_vectored (inlined)
\t    5506 <taskhive::net::coalesce::Coalesced<I> as tokio::io::AsyncWrite>::poll_flush (/t/taskhive)
\t    5507 <hyper_util::server::conn::auto::Connection<I,S,E> as core::future::Future>::poll (/t/taskhive)

taskhive-store
\t    7f03 __memmove_avx512_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)

tokio-rt-worker
\t    5509 h2::proto::connection::Connection<T,P,B>::poll (/t/taskhive)
\t    5510 h2::client::Connection<T,B>::poll (inlined)
\t    5511 taskhive::cli::bench::lean_grpc::LeanClient::work_done::{{closure}} (/t/taskhive)

tokio-rt-worker
\t    7f04 _rjem_malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5508 <alloc::vec::Vec<T> as core::clone::Clone>::clone (/t/taskhive)
"""


def self_test():
    shares, total = split(SAMPLE.splitlines(keepends=True))
    want = {
        ("HTTP/2 (h2, hyper)", False): 1,
        ("connection tasks (taskhive::net)", True): 1,
        ("store (SQLite writer, fsync)", False): 1,
        (CLIENT, False): 1,
        ("other (unattributed)", False): 1,
    }
    assert total == 5 and dict(shares) == want, (total, dict(shares))
    print("cpu_shares: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    shares, total = split(sys.stdin)
    if total == 0:
        sys.exit("cpu_shares: no samples on stdin")
    parts = sorted({p for p, _ in shares}, key=lambda p: -(shares[(p, False)] + shares[(p, True)]))
    print(f"{'part':36} {'all %':>7} {'user %':>7} {'kernel %':>8}")
    for p in parts:
        u, k = shares[(p, False)], shares[(p, True)]
        print(f"{p:36} {100 * (u + k) / total:7.1f} {100 * u / total:7.1f} {100 * k / total:8.1f}")
    print(f"samples: {total}")


if __name__ == "__main__":
    main()
