"""One-line errors for listener addresses that cannot be bound, before a server is built.

gRPC reports a taken port as a C-core log line plus ``RuntimeError: Failed to bind``, deep in a traceback; binding a
plain socket to the same address first (with SO_REUSEADDR, so a port in TIME_WAIT is not mistaken for a taken
one) gives the reason in one line naming the setting.
"""

from __future__ import annotations

import errno
import socket

from .errors import CliError


def ensure_bindable(key: str, address: str) -> None:
    """CliError naming ``key`` when ``address`` (HOST:PORT) is in use or not an address of this machine."""
    host, _, port = address.rpartition(":")
    if int(port) == 0:
        return  # any free port
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise CliError(f"{key}: cannot resolve {host!r} in {address}: {err.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CliError(f"{key}: {address} is already in use (another server is listening there; "
                               "stop it or choose another port)") from None
            raise CliError(f"{key}: cannot listen on {address}: {err.strerror}") from None


def bind_failure(err: RuntimeError) -> CliError | None:
    """The one-line error for gRPC's own bind failure (a race after ``ensure_bindable``), else None."""
    text = str(err)
    if text.startswith("Failed to bind to address"):
        return CliError(text.split(";")[0] + " (in use, or not an address of this machine)")
    return None
