"""Per-caller rate limits and stream caps on a real CP (production pipeline, mTLS on port 0, real store).

A WL over its budget is refused RESOURCE_EXHAUSTED (ErrorInfo ``RATE_LIMITED`` / ``TOO_MANY_STREAMS``, RetryInfo
with the delay) before the servicer runs, so nothing it sent is recorded; another WL, and the operator, keep theirs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.e2e.conftest import OPERATOR, _seed
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from xcwl.ops_client import OpsClient
from xporty.cp.v1 import identity_service_pb2, identity_service_pb2_grpc, policy_service_pb2, policy_service_pb2_grpc
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.ratelimit import RATE_LIMITED, TOO_MANY_STREAMS, RateLimits
from xwl_runtime.tls import secure_channel, server_only_channel

NO_REFILL = 1e-4  # tokens per second: nothing refills while a test runs


@asynccontextmanager
async def limited_cp(pki: PkiFixture, db_url: str, limits: RateLimits) -> AsyncIterator[CpApp]:
    cp = await build_cp(CpSettings(db_url=db_url, pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=30),
                                   rate_limits=limits))
    try:
        await import_wls(cp, pki, "wl-a", "wl-b")  # offline-issued test certificates, recorded like `xcwl cert import`
        await _seed(f"127.0.0.1:{cp.port}", pki)
        yield cp
    finally:
        await cp.stop(0)


def _retry_delay_s(err: grpc.aio.AioRpcError) -> float:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):  # type: ignore[arg-type]
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo detail")


async def _applied(cp: CpApp, pki: PkiFixture) -> dict[str, int]:
    async with OpsClient.connect(f"127.0.0.1:{cp.port}", pki.material(Identity.ops(OPERATOR)), timeout=10) as ops:
        return {s.wl_id: s.applied_version for s in await ops.node_status()}


async def test_wl_over_its_rate_is_refused_before_work_and_others_are_not(pki: PkiFixture, db_url: str) -> None:
    limits = RateLimits(rate_per_s=NO_REFILL, burst=8)  # the operator seeds with 3 calls of its own budget
    async with limited_cp(pki, db_url, limits) as cp:
        target = f"127.0.0.1:{cp.port}"
        async with secure_channel(target, pki.material(Identity.wl("wl-a")), expected=Identity.cp()) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            for _ in range(limits.burst):
                await stub.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(applied_version=1),
                                              timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(applied_version=2),
                                              timeout=5)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert decode_rpc_error(refused.value).reason == RATE_LIMITED
        assert _retry_delay_s(refused.value) > 1.0  # one token at NO_REFILL per second is a long wait
        async with secure_channel(target, pki.material(Identity.wl("wl-b")), expected=Identity.cp()) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            await stub.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(applied_version=2), timeout=5)
        # The refused report never reached the servicer: wl-a's status is the last admitted one.
        assert (await _applied(cp, pki)) == {"wl-a": 1, "wl-b": 2}


async def test_stream_cap_per_identity(pki: PkiFixture, sqlite_db_url: str) -> None:
    limits = RateLimits(max_streams=2)
    async with limited_cp(pki, sqlite_db_url, limits) as cp:
        target = f"127.0.0.1:{cp.port}"
        async with secure_channel(target, pki.material(Identity.wl("wl-a")), expected=Identity.cp()) as channel_a, \
                secure_channel(target, pki.material(Identity.wl("wl-b")), expected=Identity.cp()) as channel_b:
            stub_a = policy_service_pb2_grpc.PolicyServiceStub(channel_a)
            open_calls = [stub_a.WatchPolicies(policy_service_pb2.WatchPoliciesRequest(wl_id="wl-a"))
                          for _ in range(limits.max_streams)]
            for call in open_calls:
                assert (await asyncio.wait_for(call.read(), 5)).snapshot.wl_id == "wl-a"
            third = stub_a.WatchPolicies(policy_service_pb2.WatchPoliciesRequest(wl_id="wl-a"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(third.read(), 5)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert decode_rpc_error(refused.value).reason == TOO_MANY_STREAMS
            assert _retry_delay_s(refused.value) > 0
            # Another WL is not affected by wl-a's streams.
            stub_b = policy_service_pb2_grpc.PolicyServiceStub(channel_b)
            other = stub_b.WatchPolicies(policy_service_pb2.WatchPoliciesRequest(wl_id="wl-b"))
            assert (await asyncio.wait_for(other.read(), 5)).snapshot.wl_id == "wl-b"
            other.cancel()
            # A slot frees when one of wl-a's streams ends.
            open_calls[0].cancel()
            for _ in range(100):
                again = stub_a.WatchPolicies(policy_service_pb2.WatchPoliciesRequest(wl_id="wl-a"))
                try:
                    assert (await asyncio.wait_for(again.read(), 5)).snapshot.wl_id == "wl-a"
                    break
                except grpc.aio.AioRpcError as err:  # the cancellation reaches the server a moment later
                    assert decode_rpc_error(err).reason == TOO_MANY_STREAMS
                    await asyncio.sleep(0.02)
            else:
                pytest.fail("stream slot never freed")
            again.cancel()
            open_calls[1].cancel()


async def test_anonymous_enrollment_is_limited_per_address(pki: PkiFixture, sqlite_db_url: str) -> None:
    limits = RateLimits(anonymous_rate_per_s=NO_REFILL, anonymous_burst=2)
    async with limited_cp(pki, sqlite_db_url, limits) as cp:
        async with server_only_channel(f"127.0.0.1:{cp.enroll_port}", pki.dir.ca_cert.read_bytes()) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            request = identity_service_pb2.EnrollRequest(bootstrap_token="xbt_" + "A" * 43, csr_pem="junk")
            reasons = []
            for _ in range(limits.anonymous_burst + 1):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Enroll(request, timeout=5)
                reasons.append((err.value.code(), decode_rpc_error(err.value).reason))
        # The first ones reach validation (the CSR is junk); the next is refused before any work.
        assert [code for code, _ in reasons[:-1]] == [grpc.StatusCode.INVALID_ARGUMENT] * limits.anonymous_burst
        assert reasons[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, RATE_LIMITED)
        # Authenticated callers have their own budgets.
        async with secure_channel(f"127.0.0.1:{cp.port}", pki.material(Identity.wl("wl-a")),
                                  expected=Identity.cp()) as channel:
            jwks = await identity_service_pb2_grpc.IdentityServiceStub(channel).GetJwks(
                identity_service_pb2.GetJwksRequest(), timeout=5)
            assert jwks.keys


def test_rate_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimits(rate_per_s=0)
    with pytest.raises(ValueError):
        RateLimits(max_streams=0)


def test_admission_refills_and_bounds_memory(tmp_path: Path) -> None:
    from xwl_runtime.ratelimit import Admission, RateLimited

    now = [0.0]
    admission = Admission(RateLimits(rate_per_s=10, burst=2, max_tracked=4), now=lambda: now[0])
    admission.admit("a", anonymous=False)
    admission.admit("a", anonymous=False)
    with pytest.raises(RateLimited) as refused:
        admission.admit("a", anonymous=False)
    assert refused.value.retry_after_s == pytest.approx(0.1)
    now[0] += 0.1
    admission.admit("a", anonymous=False)  # refilled one token
    for n in range(20):  # many one-off callers: the table stays bounded
        now[0] += 1
        admission.admit(f"caller-{n}", anonymous=True)
    assert len(admission._buckets) <= 4


async def test_nodes_enrolling_from_one_address_wait_for_the_budget(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path
) -> None:
    """Two nodes behind one address, budget for one at a time: the second is told to wait, retries, and enrolls."""
    from wl_node.identity.enrollment import enroll
    from xwl_runtime.backoff import Backoff
    from xwl_runtime.pki import PkiDir

    limits = RateLimits(anonymous_rate_per_s=5, anonymous_burst=1)
    async with limited_cp(pki, sqlite_db_url, limits) as cp:
        async with OpsClient.connect(f"127.0.0.1:{cp.port}", pki.material(Identity.ops(OPERATOR)), timeout=10) as ops:
            tokens = {wl: (await ops.create_bootstrap_token(wl)).token for wl in ("wl-a", "wl-b")}
        dirs = {}
        for wl in tokens:
            dirs[wl] = PkiDir(tmp_path / wl)
            dirs[wl].root.mkdir()
            dirs[wl].ca_cert.write_bytes(pki.dir.ca_cert.read_bytes())
        materials = await asyncio.gather(*(
            enroll(dirs[wl], wl, f"127.0.0.1:{cp.enroll_port}", token, backoff=Backoff(base_s=0.2, cap_s=0.5))
            for wl, token in tokens.items()))
    assert all(m.pair.cert_pem for m in materials)
    assert all(dirs[wl].has(Identity.wl(wl)) for wl in tokens)


def test_cp_serve_limit_flags_reach_the_settings(pki: PkiFixture) -> None:
    from xcwl.cli import build_parser
    from xcwl.errors import CliError
    from xcwl.serve import cp_settings

    base = ["cp", "serve", "--pki", str(pki.dir.root), "--db", "sqlite:///cp.db"]
    defaults = cp_settings(build_parser().parse_args(base))
    assert defaults.rate_limits == RateLimits() and defaults.enroll_max_receive_bytes == 8 * 1024
    tuned = cp_settings(build_parser().parse_args([
        *base, "--max-message-bytes", "1048576", "--enroll-max-message-bytes", "4096", "--rate-limit", "50",
        "--rate-burst", "60", "--max-streams", "4", "--enroll-rate-limit", "0.5", "--enroll-rate-burst", "3"]))
    assert (tuned.max_receive_bytes, tuned.enroll_max_receive_bytes) == (1048576, 4096)
    assert tuned.rate_limits == RateLimits(rate_per_s=50, burst=60, max_streams=4, anonymous_rate_per_s=0.5,
                                           anonymous_burst=3)
    for flag, value in (("--rate-limit", "0"), ("--max-streams", "-1"), ("--max-message-bytes", "1e6"),
                        ("--enroll-rate-limit", "nan")):
        with pytest.raises(CliError, match=flag):
            cp_settings(build_parser().parse_args([*base, flag, value]))
