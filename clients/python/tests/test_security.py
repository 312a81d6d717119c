"""Tokens and TLS: the clients against a server started with --auth, and with --tls-cert."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.request
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import taskhive
import taskhive.aio
from conftest import BIN, Server
from support import DEADLINE, running

CLIENT, WORKER, ADMIN = "py-client-token", "py-worker-token", "py-admin-token"


def _line(role: str, token: str) -> str:
    out = subprocess.run(
        [BIN, "auth", "hash", token, "--role", role, "--name", f"py {role}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


@pytest.fixture
def auth_server(taskhive_bin: str, tmp_path: Path) -> Iterator[Server]:
    tokens = tmp_path / "tokens"
    tokens.write_text(_line("client", CLIENT) + _line("worker", WORKER) + _line("admin", ADMIN))
    s = Server(tmp_path / "data", tmp_path / "server.log", ["--auth", str(tokens)])
    s.start()
    try:
        yield s
    finally:
        s.kill()


def test_tokens_and_roles(auth_server: Server) -> None:
    with taskhive.Client(auth_server.addr) as anon:
        with pytest.raises(taskhive.UnauthenticatedError):
            anon.submit("echo", "a", b"x")
    with taskhive.Client(auth_server.addr, token=WORKER) as as_worker:
        with pytest.raises(taskhive.PermissionDeniedError, match="needs the client role"):
            as_worker.submit("echo", "a", b"x")
    w = taskhive.Worker(auth_server.addr, token=WORKER)

    @w.task("echo")
    def echo(job: taskhive.Job) -> bytes:
        return job.args[::-1]

    with taskhive.Client(auth_server.addr, token=CLIENT) as c, running(w):
        assert c.run_job("echo", "a", b"abc", wait=DEADLINE) == b"cba"
        with pytest.raises(taskhive.PermissionDeniedError):
            c.drop("echo")
    with taskhive.Client(auth_server.addr, token=ADMIN) as admin:
        assert admin.purge_dead("echo") == 0


def test_asyncio_client_and_worker_send_the_token(auth_server: Server) -> None:
    async def main() -> None:
        async with taskhive.aio.Client(auth_server.addr) as anon:
            with pytest.raises(taskhive.UnauthenticatedError):
                await anon.status()
        w = taskhive.aio.Worker(auth_server.addr, token=WORKER)

        @w.task("up")
        async def up(job: taskhive.Job) -> bytes:
            return job.args.upper()

        task = asyncio.create_task(w.run())
        try:
            assert await w.wait_connected(DEADLINE), "worker with a token did not connect"
            async with taskhive.aio.Client(auth_server.addr, token=CLIENT) as c:
                assert await c.run_job("up", "a", b"abc", wait=DEADLINE) == b"ABC"
        finally:
            await w.stop()
            await task

    asyncio.run(main())


def test_cli_takes_a_token(auth_server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKHIVE_TOKEN"}
    base = [BIN, "status", "--addr", auth_server.addr]
    denied = subprocess.run(base, capture_output=True, text=True, env=env)
    assert denied.returncode != 0
    assert "authorization: missing" in denied.stderr, denied.stderr
    ok = subprocess.run(base, capture_output=True, text=True, env={**env, "TASKHIVE_TOKEN": CLIENT})
    assert ok.returncode == 0, ok.stderr


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def tls_server(taskhive_bin: str, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    ca_key, ca, key, csr, cert, ext = (
        tmp_path / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem", "ext.cnf")
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca), "-days", "1", "-subj", "/CN=taskhive test CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=localhost")
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    s = Server(tmp_path / "data", tmp_path / "server.log",
               ["--tls-cert", str(cert), "--tls-key", str(key)])
    s.start()
    try:
        yield s, ca
    finally:
        s.kill()


def test_tls_with_a_ca_file(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    port = server.addr.rsplit(":", 1)[1]
    with taskhive.Client(f"localhost:{port}", root_certificates=str(ca)) as c:
        c.submit("t", "a", b"x")
        assert c.status().totals.pending == 1
    with taskhive.Client(f"localhost:{port}", root_certificates=ca.read_bytes(), rpc_timeout=5) as c:
        assert c.get("t", "a").name == "a"
    # The HTTP/JSON face shares the port and the certificate (HTTP/1.1 over TLS).
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(f"https://localhost:{port}/status", context=ctx, timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read())["state"] == "idle"
    # A plaintext client gets an error, not a hang.
    with taskhive.Client(server.addr, rpc_timeout=5) as plain:
        with pytest.raises(taskhive.TaskhiveError):
            plain.status()
