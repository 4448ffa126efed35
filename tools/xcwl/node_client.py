"""A WL app's typed client to its node's local API (``xporty.node.v1.StorefrontService``), and its flags.

The local API answers only callers with a certificate from the CA: the WL's own apps
(``spiffe://xporty/wl/<wl>/app/<name>``, file ``app-<wl>-<name>.crt`` in the PKI directory; issue one with
``xcwl pki issue --dir PKI --wl WL --app NAME``) for everything, operators for reads. ``--as-app WL/NAME`` picks the
app certificate, ``--as-ops NAME`` an operator certificate, ``--cert/--key`` any other.

The client accepts only the node of the expected WL (its pinned certificate name): the app's own WL, or
``--node-wl WL`` for operators and ``--cert/--key`` callers.

The calls go through the SDK (``xcwl_sdk.StorefrontClient``: deadlines, safe retries, typed errors); its errors are
turned once, here, into a one-line ``CliError`` (exit 2), exactly as the operator client does.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import grpc

from xcwl_sdk import ApiError, ClientConfig, StorefrontClient, UnavailableError
from xporty.cp.v1 import audit_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xporty.trader.v1 import offer_pb2
from xwl_runtime.errors import RemoteError
from xwl_runtime.identity import Identity, Kind
from xwl_runtime.pki import PkiDir, certificate_identity
from xwl_runtime.tls import KeyPair, TlsMaterial, secure_channel

from . import flags
from .endpoint_probe import wrong_endpoint
from .errors import CliError
from .ops_client import DEFAULT_TIMEOUT_S, describe

R = TypeVar("R")

def add_node_flags(parser: argparse.ArgumentParser) -> None:
    """``--node --pki (--as-app WL/NAME | --as-ops NAME | --cert --key) [--timeout] [--json]``."""
    flags.add(parser, "--node", required=True, metavar="HOST:PORT", help="the WL node's mTLS listener")
    flags.add(parser, "--pki", metavar="DIR", help="PKI directory with ca.crt and the caller's certificate")
    flags.add(parser, "--as-app", metavar="WL/NAME", help="a WL app: uses app-WL-NAME.crt/.key from the PKI directory")
    flags.add(parser, "--as-ops", metavar="NAME", help="an operator (reads only): uses ops-NAME.crt/.key")
    flags.add(parser, "--cert", metavar="FILE", help="client certificate (instead of --as-app/--as-ops)")
    flags.add(parser, "--key", metavar="FILE", help="client key (with --cert)")
    flags.add(parser, "--node-wl", metavar="WL",
              help="the WL whose node --node is; the server must prove it (default: the WL of --as-app)")
    flags.add(parser, "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each RPC in seconds")
    flags.add(parser, "--json", action="store_true", default=False, help="print JSON for machines")


def app_identity(value: str) -> Identity:
    """``wl-a/shop`` → the app identity ``spiffe://xporty/wl/wl-a/app/shop``."""
    wl_id, sep, name = value.partition("/")
    if not sep:
        raise CliError(f"--as-app: expected WL/NAME (e.g. wl-a/shop), got {value!r}")
    try:
        return Identity.app(wl_id, name)
    except ValueError as err:
        raise CliError(f"--as-app: {err}") from None


def caller_identity(args: argparse.Namespace) -> Identity | None:
    """The identity the flags name (None when --cert/--key give the files directly)."""
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise CliError("--cert and --key go together")
        return None
    if args.as_app and args.as_ops:
        raise CliError("give one of --as-app and --as-ops")
    if args.as_app:
        return app_identity(args.as_app)
    if args.as_ops:
        try:
            return Identity.ops(args.as_ops)
        except ValueError as err:
            raise CliError(f"--as-ops: {err}") from None
    raise CliError("who is calling? give --as-app WL/NAME (a WL app), --as-ops NAME, or --cert and --key")


def expected_node(args: argparse.Namespace, material: TlsMaterial) -> Identity:
    """The WL node the server must prove to be: ``--node-wl``, else the WL of the calling app."""
    if getattr(args, "node_wl", None):
        try:
            return Identity.wl(args.node_wl)
        except ValueError as err:
            raise CliError(f"--node-wl: {err}") from None
    caller = certificate_identity(material.pair.cert_pem)
    if caller is not None and caller.kind is Kind.APP:
        return Identity.wl(caller.wl_id)
    raise CliError("--node-wl WL is required: the WL whose node --node is (its certificate must prove it)")


def node_material(args: argparse.Namespace) -> TlsMaterial:
    """The TLS material the flags name; a clear CliError when files are missing."""
    if not args.pki:
        raise CliError("--pki is required (or set XCWL_PKI): the directory with ca.crt and the caller's certificate")
    pki = PkiDir(Path(args.pki))
    if not pki.ca_cert.exists():
        raise CliError(f"no CA certificate at {pki.ca_cert} (--pki)")
    identity = caller_identity(args)
    if identity is None:
        cert, key = Path(args.cert), Path(args.key)
    else:
        cert, key = pki.cert(identity), pki.key(identity)
    for path in (cert, key):
        if not path.exists():
            hint = ""
            if identity is not None and identity.wl_id and identity.name:
                hint = f": issue it with 'xcwl pki issue --dir {pki.root} --wl {identity.wl_id} --app {identity.name}'"
            elif identity is not None:
                hint = f": issue it with 'xcwl pki issue --dir {pki.root} --ops {identity.name}'"
            raise CliError(f"no such file {path}{hint}")
    return TlsMaterial(pki.ca_cert.read_bytes(), KeyPair(cert.read_bytes(), key.read_bytes()))


class NodeRpcError(CliError):
    """A failed local-API call: the one-line message plus the decoded status, for callers that react to it."""

    def __init__(self, message: str, remote: RemoteError) -> None:
        super().__init__(message)
        self.remote = remote


class NodeClient:
    """The CLI's StorefrontService calls: the SDK's ``StorefrontClient``, with failures as one-line ``CliError``s."""

    def __init__(self, channel: grpc.aio.Channel, *, target: str, timeout: float = DEFAULT_TIMEOUT_S,
                 material: TlsMaterial | None = None, expected: Identity | None = None) -> None:
        self._target = target
        self._material = material
        self._expected = expected
        self.sdk = StorefrontClient(channel, config=ClientConfig(timeout_s=timeout, checkout_timeout_s=timeout))

    @classmethod
    @asynccontextmanager
    async def connect(cls, target: str, material: TlsMaterial, *, expected: Identity,
                      timeout: float = DEFAULT_TIMEOUT_S) -> AsyncIterator[NodeClient]:
        """A client over mTLS to the node of ``expected`` at ``target``; the channel closes on exit."""
        async with secure_channel(target, material, expected=expected) as channel:
            yield cls(channel, target=target, timeout=timeout, material=material, expected=expected)

    @classmethod
    @asynccontextmanager
    async def from_args(cls, args: argparse.Namespace) -> AsyncIterator[NodeClient]:
        material = node_material(args)
        async with cls.connect(args.node, material, expected=expected_node(args, material),
                               timeout=args.timeout) as client:
            yield client

    async def _call(self, call: Awaitable[R]) -> R:
        try:
            return await call
        except ApiError as err:
            remote = RemoteError(code=err.code, message=err.message, reason=err.reason, metadata=err.metadata)
            line = describe(remote, self._target)
            if isinstance(err, UnavailableError) and not err.reason and self._material and self._expected:
                line = await wrong_endpoint(self._target, self._material.ca_pem, self._expected, "--node") or line
            raise NodeRpcError(line, remote) from None

    # --- exportable offers (apps of this WL) ------------------------------------------------------------------
    async def publish(self, offer: offer_pb2.Offer) -> offer_pb2.Offer:
        return await self._call(self.sdk.publish_offer(offer))

    async def update(self, offer: offer_pb2.Offer) -> offer_pb2.Offer:
        return await self._call(self.sdk.update_offer(offer))

    async def withdraw(self, offer_id: str) -> None:
        await self._call(self.sdk.withdraw_offer(offer_id))

    # --- imported catalog -------------------------------------------------------------------------------------
    async def list_imported(self, *, source_wl: str = "", category: str = "",
                            text: str = "") -> list[storefront_pb2.ImportedOffer]:
        """Every imported offer matching the filters, following page tokens (stable order by id)."""
        return await self._call(self.sdk.list_imported_offers(source_wl=source_wl, category=category, text=text))

    async def get_imported(self, imported_offer_id: str) -> storefront_pb2.ImportedOffer:
        return await self._call(self.sdk.get_imported_offer(imported_offer_id))

    # --- checkout ---------------------------------------------------------------------------------------------
    async def checkout(self, request: storefront_service_pb2.CheckoutRequest) -> storefront_pb2.Checkout:
        """One checkout, retried on transient codes with the request's key (the SDK's rules); not waited on."""
        return await self._call(self.sdk.checkout(
            request.imported_offer_id, request.quantity, buyer_reference=request.buyer_reference,
            idempotency_key=request.idempotency_key or None, wait=False))

    async def get_checkout(self, checkout_id: str) -> storefront_pb2.Checkout:
        return await self._call(self.sdk.get_checkout(checkout_id))

    async def node_state(self) -> storefront_pb2.NodeState:
        return (await self._call(self.sdk.node_state())).state

    async def audit_checkpoint(self) -> audit_pb2.AuditCheckpoint | None:
        """The CP audit checkpoint the node keeps (None before it has seen one)."""
        resp = await self._call(self.sdk.node_state())
        return resp.audit_checkpoint if resp.HasField("audit_checkpoint") else None


NodeHandler = Callable[[argparse.Namespace, NodeClient], Awaitable[int]]


def node_command(handler: NodeHandler) -> Callable[[argparse.Namespace], int]:
    """Turn ``async handler(args, client)`` into a command function that connects with the node flags."""

    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with NodeClient.from_args(args) as client:
                return await handler(args, client)

        return asyncio.run(main())

    run.__doc__ = handler.__doc__
    return run
