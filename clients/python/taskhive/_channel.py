"""Channels to a taskhive server: plaintext or TLS (a CA file), with an optional bearer token."""

from __future__ import annotations

import collections
import os
from typing import Any, Optional, Sequence, Tuple, Union

import grpc

#: A CA certificate (PEM): its bytes, or the path of a file holding it.
RootCertificates = Union[bytes, str, "os.PathLike[str]"]
ChannelOptions = Sequence[Tuple[str, object]]


def _pem(root_certificates: RootCertificates) -> bytes:
    if isinstance(root_certificates, bytes):
        return root_certificates
    with open(root_certificates, "rb") as f:
        return f.read()


def default_token(token: Optional[str]) -> Optional[str]:
    """``token``, else ``$TASKHIVE_TOKEN``, else None."""
    return token if token is not None else os.environ.get("TASKHIVE_TOKEN") or None


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


def _with_token(metadata: Any, token: str) -> list[tuple[str, str]]:
    md = [(k, v) for k, v in (metadata or [])]
    md.append(("authorization", f"Bearer {token}"))
    return md


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call of a blocking channel."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, d: grpc.ClientCallDetails) -> _Details:
        return _Details(
            d.method,
            d.timeout,
            _with_token(d.metadata, self._token),
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)


def sync_channel(
    addr: str,
    *,
    token: Optional[str] = None,
    root_certificates: Optional[RootCertificates] = None,
    options: Optional[ChannelOptions] = None,
) -> grpc.Channel:
    """A blocking channel: TLS when ``root_certificates`` is given, the token on every call."""
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=_pem(root_certificates))
        channel = grpc.secure_channel(addr, creds, options=options)
    else:
        channel = grpc.insecure_channel(addr, options=options)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel


class _AioToken(grpc.aio.ClientInterceptor):
    """Base of the asyncio interceptors: the call details with the token added."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            d.method,
            d.timeout,
            grpc.aio.Metadata(*_with_token(d.metadata, self._token)),
            d.credentials,
            d.wait_for_ready,
        )


class _AioUnaryUnary(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _AioUnaryStream(_AioToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _AioStreamUnary(_AioToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


class _AioStreamStream(_AioToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


def aio_channel(
    addr: str,
    *,
    token: Optional[str] = None,
    root_certificates: Optional[RootCertificates] = None,
    options: Optional[ChannelOptions] = None,
) -> grpc.aio.Channel:
    """An asyncio channel: TLS when ``root_certificates`` is given, the token on every call."""
    interceptors = None
    if token:
        interceptors = [
            _AioUnaryUnary(token),
            _AioUnaryStream(token),
            _AioStreamUnary(token),
            _AioStreamStream(token),
        ]
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=_pem(root_certificates))
        return grpc.aio.secure_channel(addr, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(addr, options=options, interceptors=interceptors)
