"""Peer-token attacks: a token naming several audiences, and a JWT signing key that outlives its rotation.

The rotation runs through the real CP (``build_cp`` with an injected clock, AdminService, IssueToken, the policy
view a node verifies with); verification is the exporter's real ``TokenVerifier``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
import jwt
import pytest

from cp_server.app import build_cp
from cp_server.identity.signing import verification_keys
from cp_server.trust.token_keys import key_file
from tests.cp_server.core_harness import RPC_TIMEOUT, Cp, rpc_error, settings_for
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import identity_pb2, identity_service_pb2_grpc
from xporty.cp.v1 import identity_service_pb2 as ids
from xporty.cp.v1 import policy_service_pb2 as ps
from xwl_runtime.clock import ManualClock
from xwl_runtime.errors import Unauthenticated
from xwl_runtime.identity import Identity
from xwl_runtime.pki import new_private_key
from xwl_runtime.tokens import ISSUER, TokenVerifier, audience_of, issue_token, key_id

WL_A = Identity.wl("wl-a")
WL_B = Identity.wl("wl-b")


def _refusal(verifier: TokenVerifier, token: str, subject: Identity = WL_B) -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token, subject)
    return refused.value.reason


@pytest.mark.parametrize("aud", [
    [audience_of("wl-a"), audience_of("wl-c")],  # the victim plus another WL: pyjwt alone would accept it
    [audience_of("wl-a")],                       # a one-element list is still not "exactly one audience"
])
def test_a_token_with_an_audience_list_is_refused(aud: list[str]) -> None:
    key = new_private_key()
    clock = ManualClock()
    now = int(clock.now().timestamp())
    token = jwt.encode({"iss": ISSUER, "sub": WL_B.spiffe_id, "aud": aud, "scope": "orders:place", "iat": now,
                        "exp": now + 60, "jti": "x"}, key, algorithm="ES256",
                       headers={"kid": key_id(key.public_key())})
    keys = verification_keys(key)
    verifier = TokenVerifier(lambda: keys, "wl-a", clock)
    assert _refusal(verifier, token) == "TOKEN_AUDIENCE"
    # The same key and claims with a single string audience pass: the refusal is about the list alone.
    good = issue_token(key, subject=WL_B, audience_wl="wl-a", scopes=["orders:place"], now=clock.now())
    assert verifier.verify(good.token, WL_B).audience_wl == "wl-a"


@asynccontextmanager
async def _cp(pki: PkiFixture, db_url: str, clock: ManualClock) -> AsyncIterator[Cp]:
    app = await build_cp(settings_for(pki, db_url), clock)
    async with AsyncExitStack() as stack:
        try:
            yield Cp(app, pki, stack)
        finally:
            await stack.aclose()
            await app.stop(0)


async def _view_keys(cp: Cp) -> list[identity_pb2.VerificationKey]:
    resp = await (await cp.policy(WL_A)).GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
    return list(resp.view.token_keys)


async def _token(cp: Cp) -> str:
    stub = identity_service_pb2_grpc.IdentityServiceStub(await cp.channel(WL_B))
    return (await stub.IssueToken(ids.IssueTokenRequest(audience_wl="wl-a"), timeout=RPC_TIMEOUT)).token


def _kids(keys: Sequence[identity_pb2.VerificationKey]) -> list[str]:
    return [k.kid for k in keys]


async def test_the_old_kid_is_valid_for_one_token_lifetime_after_rotation_then_refused(
    pki: PkiFixture, db_url: str
) -> None:
    clock = ManualClock()
    async with _cp(pki, db_url, clock) as cp:
        await cp.register("wl-a", "wl-b")
        keys = await _view_keys(cp)
        verifier = TokenVerifier(lambda: keys, "wl-a", clock)  # the exporter wl-a verifies with its view
        old_kid = _kids(keys)[0]
        before_rotation = await _token(cp)

        # Only an operator rotates; a node's attempt changes nothing.
        state = await cp.state()
        code, _, _ = await rpc_error((await cp.admin(WL_A)).RotateTokenKey(pb.RotateTokenKeyRequest(),
                                                                            timeout=RPC_TIMEOUT))
        assert code is grpc.StatusCode.PERMISSION_DENIED and await cp.state() == state

        rotated = await (await cp.admin()).RotateTokenKey(pb.RotateTokenKeyRequest(), timeout=RPC_TIMEOUT)
        new_kid = rotated.current.kid
        assert rotated.previous_kid == old_kid and new_kid != old_kid
        lifetime = cp.app.ctx.settings.token_lifetime
        assert rotated.previous_retire_time.ToDatetime(dt.UTC) == pytest.approx(clock.now() + lifetime,
                                                                                 abs=dt.timedelta(seconds=1))
        mode = stat.S_IMODE(os.stat(key_file(pki.dir.root, new_kid)).st_mode)
        assert mode == 0o600

        keys = await _view_keys(cp)
        assert _kids(keys) == [new_kid, old_kid]
        assert verifier.verify(before_rotation, WL_B).kid == old_kid  # still valid: issued before the rotation
        after_rotation = await _token(cp)
        assert jwt.get_unverified_header(after_rotation)["kid"] == new_kid
        assert verifier.verify(after_rotation, WL_B).kid == new_kid

        # One token lifetime later the old key drops out of every view (the CP's loop commits the change).
        clock.advance(lifetime.total_seconds() + 1)
        for _ in range(100):
            keys = await _view_keys(cp)
            if _kids(keys) == [new_kid]:
                break
            await asyncio.sleep(0.1)
        assert _kids(keys) == [new_kid]
        assert _refusal(verifier, before_rotation) == "TOKEN_UNKNOWN_KEY"
        # Even a fresh token signed with the old (say, leaked) key is refused now.
        leaked = issue_token(cp.app.ctx.jwt_key, subject=WL_B, audience_wl="wl-a", scopes=["orders:place"],
                             now=clock.now())
        assert _refusal(verifier, leaked.token) == "TOKEN_UNKNOWN_KEY"
        assert verifier.verify(await _token(cp), WL_B).kid == new_kid

        actions = [r.action for r in (await (await cp.admin()).ListAuditRecords(
            pb.ListAuditRecordsRequest(page_size=1000), timeout=RPC_TIMEOUT)).records]
        assert actions.count("token_key.rotate") == 1 and actions.count("token_key.drop") == 1

