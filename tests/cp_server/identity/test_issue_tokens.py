"""IssueTokens: one call returns one single-audience token per peer the caller may call now, none for a peer the
policy blocks; the refusals are IssueToken's."""

from __future__ import annotations

import datetime as dt

import grpc

from tests.cp_server.identity.harness import IdentityCp
from tests.cp_server.identity.rpc import mtls_stub, refused
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import XcwlError
from xwl_runtime.identity import Identity
from xwl_runtime.tokens import TokenVerifier

WL_B = Identity.wl("wl-b")


async def test_one_token_per_callable_peer_each_for_one_audience_none_for_blocked_ones(
        identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", "wl-b", "wl-c", "wl-d", "wl-e", "wl-f")
    await identity_cp.open_pair("wl-b", "wl-a")  # callable
    await identity_cp.open_pair("wl-e", "wl-b")  # callable (wl-b is wl_a of this pair)
    await identity_cp.open_pair("wl-b", "wl-c", blocked_importer="wl-b")  # wl-c -> wl-b imports disabled
    await identity_cp.open_pair("wl-b", "wl-d", status="PAUSED")  # pair not active
    await identity_cp.open_pair("wl-a", "wl-f")  # not wl-b's pair
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_B)) as stub:
        jwks = (await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).keys
        resp = await stub.IssueTokens(pb.IssueTokensRequest(scopes=["orders:place"]), timeout=10)
        default_scopes = await stub.IssueTokens(pb.IssueTokensRequest(), timeout=10)
    assert [t.audience_wl for t in resp.tokens] == ["wl-a", "wl-e"]
    assert [t.audience_wl for t in default_scopes.tokens] == ["wl-a", "wl-e"]
    assert len({t.token for t in resp.tokens}) == 2  # one signature per audience, never one shared token
    now = dt.datetime.now(dt.UTC)
    for t in resp.tokens:
        assert dt.timedelta(minutes=4) < t.expire_time.ToDatetime(dt.UTC) - now <= dt.timedelta(minutes=5)
        claims = TokenVerifier(lambda: jwks, t.audience_wl, SystemClock()).verify(t.token, WL_B)
        assert (claims.subject, claims.audience_wl, claims.scopes) == (WL_B, t.audience_wl, {"orders:place"})
        # Valid at its own exporter only, and only for the node it was issued to.
        for other in ("wl-a", "wl-c", "wl-d", "wl-e"):
            if other != t.audience_wl:
                verifier = TokenVerifier(lambda: jwks, other, SystemClock())
                assert _reason(verifier, t.token, WL_B) == "TOKEN_WRONG_AUDIENCE"
        verifier = TokenVerifier(lambda: jwks, t.audience_wl, SystemClock())
        assert _reason(verifier, t.token, Identity.wl("wl-f")) == "TOKEN_SUBJECT_MISMATCH"

    # A WL with no open pair gets an empty answer, not an error.
    await identity_cp.register_wl("wl-g")
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(Identity.wl("wl-g"))) as stub:
        assert list((await stub.IssueTokens(pb.IssueTokensRequest(), timeout=10)).tokens) == []


async def test_issue_tokens_refusals(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", "wl-b")
    await identity_cp.open_pair("wl-a", "wl-b")
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_B)) as stub:
        scope = await refused(stub.IssueTokens(pb.IssueTokensRequest(scopes=["orders:place", "admin"]), timeout=10))
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(Identity.wl("wl-z"))) as stub:
        unregistered = await refused(stub.IssueTokens(pb.IssueTokensRequest(), timeout=10))
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(Identity.ops("alice"))) as stub:
        ops = await refused(stub.IssueTokens(pb.IssueTokensRequest(), timeout=10))
    assert (scope.code, scope.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_NOT_ALLOWED")
    assert (unregistered.code, unregistered.reason) == (grpc.StatusCode.PERMISSION_DENIED, "WL_NOT_REGISTERED")
    assert (ops.code, ops.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")


def _reason(verifier: TokenVerifier, token: str, presenter: Identity) -> str:
    try:
        verifier.verify(token, presenter)
    except XcwlError as err:
        return err.reason
    raise AssertionError("verification succeeded but should have failed")
