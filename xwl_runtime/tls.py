"""mTLS credentials for servers and channels, with the keepalive and reconnect settings every process uses.

grpcio servers can swap their certificate at run time (``dynamic_ssl_server_credentials``); clients cannot, so on
rotation a new channel is built and the old one drained (see ``wl_node`` certificate renewal).

Every client channel names the identity it expects to reach. grpcio has no custom peer verifier, so the check is
done by the TLS host-name verification itself: the CA writes into each certificate one DNS name that only it
assigns (``xwl_runtime.identity.pinned_name``), and the channel sets ``grpc.ssl_target_name_override`` to the
expected identity's pinned name. A certificate from our CA for any other identity lacks that name and the
handshake fails (the call ends UNAVAILABLE), whatever address was dialled.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from . import tracing
from .identity import Identity, pinned_name
from .pki import PkiDir

# Keepalive: servers must permit the clients' pings, or they drop the connection after two of them.
SERVER_KEEPALIVE_TIME_MS = 30_000
SERVER_KEEPALIVE_TIMEOUT_MS = 10_000
SERVER_MIN_PING_INTERVAL_MS = 10_000
CLIENT_KEEPALIVE_TIME_MS = 15_000
CLIENT_KEEPALIVE_TIMEOUT_MS = 10_000
# Reconnect backoff: gRPC's default caps at 120 s, far too slow for a 1-minute reaction target. Only the initial and
# the maximum backoff are set: ``grpc.min_reconnect_backoff_ms`` is gRPC core's minimum CONNECT TIMEOUT (default
# 20 s), and lowering it makes any TCP + TLS handshake slower than that (a loaded host) fail as "handshaker shutdown".
CLIENT_INITIAL_RECONNECT_BACKOFF_MS = 200
CLIENT_MAX_RECONNECT_BACKOFF_MS = 3_000
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""What a client channel accepts: the largest legitimate response (a catalog page) with room to spare."""
# Server receive limits are a property of each listener (``xwl_runtime.server.Listener``): the anonymous enrollment
# listener accepts a few KiB, the others their largest legitimate request (docs/operations.md, "Message limits").
DEFAULT_SERVER_RECEIVE_BYTES = 4 * 1024 * 1024
DEFAULT_SERVER_SEND_BYTES = MAX_MESSAGE_BYTES

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.so_reuseport", 0),
)


def server_message_options(max_receive_bytes: int, max_send_bytes: int) -> tuple[tuple[str, int], ...]:
    """gRPC server options bounding one message in each direction (checked by gRPC core before any decoding)."""
    return (
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", max_send_bytes),
    )

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", CLIENT_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", CLIENT_INITIAL_RECONNECT_BACKOFF_MS),
    ("grpc.max_reconnect_backoff_ms", CLIENT_MAX_RECONNECT_BACKOFF_MS),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its private key, PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class TlsMaterial:
    """Everything a process needs for mTLS: the CA bundle and its own key pair."""

    ca_pem: bytes
    pair: KeyPair

    @classmethod
    def from_pki(cls, pki: PkiDir, identity: Identity) -> TlsMaterial:
        return cls(
            ca_pem=pki.ca_cert.read_bytes(),
            pair=KeyPair(pki.cert(identity).read_bytes(), pki.key(identity).read_bytes()),
        )

    @classmethod
    def from_files(cls, ca: Path, cert: Path, key: Path) -> TlsMaterial:
        return cls(ca.read_bytes(), KeyPair(cert.read_bytes(), key.read_bytes()))


class ReloadableServerCredentials:
    """Server mTLS credentials whose key pair can be replaced without restarting the server."""

    def __init__(self, material: TlsMaterial, *, require_client_auth: bool = True) -> None:
        self._lock = threading.Lock()
        self._ca_pem = material.ca_pem
        self._pending: grpc.ServerCertificateConfiguration | None = None
        initial = grpc.ssl_server_certificate_configuration(
            [(material.pair.key_pem, material.pair.cert_pem)], root_certificates=material.ca_pem
        )
        self.credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            self._fetch,  # type: ignore[arg-type]  # gRPC accepts None (keep the current pair); stubs omit it
            require_client_authentication=require_client_auth,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC core on new handshakes; returning None keeps the current configuration.
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def update(self, pair: KeyPair) -> None:
        """Serve ``pair`` on every handshake from now on."""
        config = grpc.ssl_server_certificate_configuration(
            [(pair.key_pem, pair.cert_pem)], root_certificates=self._ca_pem
        )
        with self._lock:
            self._pending = config


def server_tls_only_credentials(material: TlsMaterial) -> grpc.ServerCredentials:
    """Server-authenticated TLS without client certificates: only for the CP's enrollment listener."""
    return grpc.ssl_server_credentials(
        [(material.pair.key_pem, material.pair.cert_pem)], root_certificates=None, require_client_auth=False
    )


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """mTLS channel credentials presenting this process's key pair."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem,
        private_key=material.pair.key_pem,
        certificate_chain=material.pair.cert_pem,
    )


def pinning_options(expected: Identity) -> tuple[tuple[str, str], ...]:
    """Channel options that make the TLS handshake accept only a certificate of ``expected``."""
    return (("grpc.ssl_target_name_override", pinned_name(expected)),)


def secure_channel(
    target: str,
    material: TlsMaterial | None,
    *,
    expected: Identity,
    extra_options: Sequence[tuple[str, int | str]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """An aio channel over mTLS that accepts only a server proving ``expected``.

    While tracing is on, the OpenTelemetry client interceptors come first (they propagate ``traceparent``).

    Plaintext when ``material`` is None (``--insecure-dev`` only; nothing is proven then).
    """
    options = [*CHANNEL_OPTIONS, *extra_options]
    chain = [*tracing.client_interceptors(), *interceptors]
    if material is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
    return grpc.aio.secure_channel(
        target, channel_credentials(material), options=[*options, *pinning_options(expected)], interceptors=chain
    )


def server_only_channel(target: str, ca_pem: bytes, *, expected: Identity | None = None) -> grpc.aio.Channel:
    """A channel that presents no certificate (enrollment) and accepts only the CP (or ``expected``)."""
    pinned = pinning_options(expected or Identity.cp())
    return grpc.aio.secure_channel(
        target, grpc.ssl_channel_credentials(root_certificates=ca_pem), options=[*CHANNEL_OPTIONS, *pinned]
    )
