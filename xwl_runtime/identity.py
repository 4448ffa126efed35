"""Who is calling: SPIFFE identities carried in certificates' URI SAN.

* ``spiffe://xporty/cp``                     the control plane
* ``spiffe://xporty/wl/<wl_id>``              a WL node
* ``spiffe://xporty/wl/<wl_id>/app/<name>``   one of a WL's own services (local API callers)
* ``spiffe://xporty/ops/<name>``              an operator (ops engineer, CLI, automation)

Each identity also has one DNS name that only the CA assigns (``pinned_name``): every certificate carries the
name of its own identity, and every client sets ``grpc.ssl_target_name_override`` to the name of the identity it
expects to reach, so a genuine certificate of another identity fails the handshake (see ``xwl_runtime.tls``).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from cryptography import x509

from .errors import echo

TRUST_DOMAIN = "xporty"
PINNED_DOMAIN = "xporty.internal"
"""DNS suffix reserved for the names the CA assigns; no other name under it is ever certified."""
_NAME = r"[a-z0-9][a-z0-9-]{0,62}"
NAME_RE = re.compile(rf"^{_NAME}$")
_SPIFFE_RE = re.compile(
    rf"^spiffe://{TRUST_DOMAIN}/(?:(?P<cp>cp)|wl/(?P<wl>{_NAME})(?:/app/(?P<app>{_NAME}))?|ops/(?P<ops>{_NAME}))$"
)


class Kind(enum.Enum):
    """The kinds of principal the system knows."""

    CP = "cp"
    WL = "wl"
    APP = "app"
    OPS = "ops"


@dataclass(frozen=True)
class Identity:
    """A verified principal. ``wl_id`` is set for WL nodes and WL apps; ``name`` for apps and operators."""

    kind: Kind
    wl_id: str = ""
    name: str = ""

    @property
    def spiffe_id(self) -> str:
        if self.kind is Kind.CP:
            return f"spiffe://{TRUST_DOMAIN}/cp"
        if self.kind is Kind.WL:
            return f"spiffe://{TRUST_DOMAIN}/wl/{self.wl_id}"
        if self.kind is Kind.APP:
            return f"spiffe://{TRUST_DOMAIN}/wl/{self.wl_id}/app/{self.name}"
        return f"spiffe://{TRUST_DOMAIN}/ops/{self.name}"

    def __str__(self) -> str:
        return self.spiffe_id

    @classmethod
    def cp(cls) -> Identity:
        return cls(Kind.CP)

    @classmethod
    def wl(cls, wl_id: str) -> Identity:
        _check_name(wl_id)
        return cls(Kind.WL, wl_id=wl_id)

    @classmethod
    def app(cls, wl_id: str, name: str) -> Identity:
        _check_name(wl_id)
        _check_name(name)
        return cls(Kind.APP, wl_id=wl_id, name=name)

    @classmethod
    def ops(cls, name: str) -> Identity:
        _check_name(name)
        return cls(Kind.OPS, name=name)


def pinned_name(identity: Identity) -> str:
    """The DNS name the CA writes into ``identity``'s certificates and clients pin when they expect it.

    One distinct label per kind keeps the mapping one-to-one: ``cp.xporty.internal``,
    ``<wl>.wl.xporty.internal``, ``<name>.<wl>.app.xporty.internal``, ``<name>.ops.xporty.internal``.
    """
    if identity.kind is Kind.CP:
        return f"cp.{PINNED_DOMAIN}"
    if identity.kind is Kind.WL:
        return f"{identity.wl_id}.wl.{PINNED_DOMAIN}"
    if identity.kind is Kind.APP:
        return f"{identity.name}.{identity.wl_id}.app.{PINNED_DOMAIN}"
    return f"{identity.name}.ops.{PINNED_DOMAIN}"


def is_reserved_name(name: str) -> bool:
    """True for names under the CA's reserved suffix (only ``pinned_name`` may put them in a certificate)."""
    lowered = name.lower().rstrip(".")
    return lowered == PINNED_DOMAIN or lowered.endswith("." + PINNED_DOMAIN)


def _check_name(value: str) -> None:
    if not NAME_RE.match(value):
        raise ValueError(f"invalid identity name {echo(value)}: lower-case letters, digits and '-', max 63")


def parse_spiffe_id(uri: str) -> Identity | None:
    """The identity named by a SPIFFE URI, or None if it is not one of ours."""
    match = _SPIFFE_RE.match(uri)
    if match is None:
        return None
    if match.group("cp"):
        return Identity.cp()
    if match.group("ops"):
        return Identity(Kind.OPS, name=match.group("ops"))
    if match.group("app"):
        return Identity(Kind.APP, wl_id=match.group("wl"), name=match.group("app"))
    return Identity(Kind.WL, wl_id=match.group("wl"))


def identity_of_certificate(cert: x509.Certificate) -> Identity | None:
    """The single SPIFFE identity in a certificate's URI SAN, or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = [parse_spiffe_id(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
    ours = [i for i in found if i is not None]
    return ours[0] if len(ours) == 1 else None


@functools.lru_cache(maxsize=4096)
def identity_of_pem(pem: bytes) -> Identity | None:
    """Cached: the identity of a PEM certificate as gRPC's auth context hands it over."""
    return identity_of_certificate(x509.load_pem_x509_certificate(pem))
