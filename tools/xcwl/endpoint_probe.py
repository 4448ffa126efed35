"""Say which server answered when a pinned call cannot reach the one expected: "a node given as --cp".

A pinned channel fails a handshake with the wrong server as a bare UNAVAILABLE, indistinguishable from a server
that is down. After such a failure the CLI looks once at the certificate the endpoint presents (a plain TLS
handshake trusting the same CA, no name pinned, no request sent) and names what is really there.
"""

from __future__ import annotations

import asyncio
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from xwl_runtime.identity import Identity, Kind
from xwl_runtime.pki import certificate_identity

PROBE_TIMEOUT_S = 2.0


def describe_identity(identity: Identity) -> str:
    """``the CP`` / ``the WL node of wl-a`` / the SPIFFE id."""
    if identity.kind is Kind.CP:
        return "the CP"
    if identity.kind is Kind.WL:
        return f"the WL node of {identity.wl_id}"
    return identity.spiffe_id


async def presented_identity(target: str, ca_pem: bytes, *, timeout: float = PROBE_TIMEOUT_S) -> Identity | None:
    """The identity in the certificate ``target`` presents, verified against ``ca_pem``; None when it cannot be
    had (nothing listening, no TLS, a certificate from another CA)."""
    host, _, port = target.rpartition(":")
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = False  # the point is to learn the name, which the chain check already vouches for
    context.set_alpn_protocols(["h2"])
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port), ssl=context), timeout)
    except (OSError, ValueError, TimeoutError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        try:  # let the transport finish closing inside this loop (never left for the garbage collector)
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (OSError, TimeoutError, ssl.SSLError):
            pass
    if not der:
        return None
    return certificate_identity(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))


async def wrong_endpoint(target: str, ca_pem: bytes, expected: Identity, flag: str) -> str | None:
    """One line when ``target`` proves an identity other than ``expected``; None when it does not say."""
    found = await presented_identity(target, ca_pem)
    if found is None or found == expected:
        return None
    return (f"{flag} {target} is {describe_identity(found)}, not {describe_identity(expected)}: "
            f"give {describe_identity(expected)}'s listener")
