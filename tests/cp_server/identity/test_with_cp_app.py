"""Identity inside the whole CP (``cp_server.app.build_cp``): operator token → node enrollment → peer token.

Also drives the enrollment listener with grpcurl (no client certificate), as an operator debugging a node's
first start would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.cp_server.identity.rpc import mtls_stub, refused
from tests.support import grpcurl
from tests.support.pki import PkiFixture
from wl_node.identity import EnrollmentError, enroll
from xporty.cp.v1 import admin_service_pb2, admin_service_pb2_grpc, registry_pb2
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, make_csr, new_private_key
from xwl_runtime.tls import secure_channel

OPS = Identity.ops("alice")
PROTO = Path(__file__).resolve().parents[3] / "proto"


@pytest.fixture
async def cp_app(pki: PkiFixture, db_url: str) -> AsyncIterator[CpApp]:
    app = await build_cp(CpSettings(db_url=db_url, pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                    enroll_listen="127.0.0.1:0"))
    try:
        yield app
    finally:
        await app.stop(0)


async def _admin_token(app: CpApp, pki: PkiFixture, wl_id: str) -> str:
    async with secure_channel(f"127.0.0.1:{app.port}", pki.material(OPS), expected=Identity.cp()) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        for wl in ("wl-a", "wl-b"):
            try:
                await admin.RegisterWl(admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
                    wl_id=wl, name=wl.upper(), currency=f"XPY-{wl[-1].upper()}", currency_decimals=2,
                    reference_rate="1", trader_endpoint="127.0.0.1:1")), timeout=10)
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        resp = await admin.CreateBootstrapToken(
            admin_service_pb2.CreateBootstrapTokenRequest(wl_id=wl_id, ttl=duration_pb2.Duration(seconds=600)),
            timeout=10)
    return resp.token


def _node_pki(pki: PkiFixture, root: Path) -> PkiDir:
    root.mkdir(parents=True)
    shutil.copy(pki.dir.ca_cert, root / "ca.crt")
    return PkiDir(root)


async def test_operator_token_enrolls_a_node_that_then_gets_peer_tokens(
    cp_app: CpApp, pki: PkiFixture, tmp_path: Path
) -> None:
    token = await _admin_token(cp_app, pki, "wl-b")
    node = _node_pki(pki, tmp_path / "node")

    material = await enroll(node, "wl-b", f"127.0.0.1:{cp_app.enroll_port}", token)

    async with mtls_stub(f"127.0.0.1:{cp_app.port}", material) as stub:
        issued = await stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-a"), timeout=10)
        assert issued.token.count(".") == 2
        # Enroll is not served to certificate holders on the mTLS listener.
        err = await refused(stub.Enroll(pb.EnrollRequest(bootstrap_token=token,
                                                         csr_pem=make_csr(new_private_key()).decode()), timeout=10))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(EnrollmentError, match="refused the bootstrap token"):
        await enroll(_node_pki(pki, tmp_path / "again"), "wl-b", f"127.0.0.1:{cp_app.enroll_port}", token)


async def test_grpcurl_on_the_enrollment_listener(cp_app: CpApp, pki: PkiFixture) -> None:
    token = await _admin_token(cp_app, pki, "wl-a")
    target = f"127.0.0.1:{cp_app.enroll_port}"
    # Reflection is not offered to anonymous callers: grpcurl reads the contract from the proto files.
    ca_args = [*grpcurl.tls_args(pki.dir.ca_cert), "-import-path", str(PROTO), "-proto",
               "xporty/cp/v1/identity_service.proto"]
    request = json.dumps({"bootstrap_token": token, "csr_pem": make_csr(new_private_key()).decode()})

    ok = await grpcurl.arun([*ca_args, "-d", request, target, "xporty.cp.v1.IdentityService/Enroll"])
    assert ok.returncode == 0, ok.stderr
    assert grpcurl.parse_stream(ok.stdout)[0]["spiffeId"] == "spiffe://xporty/wl/wl-a"

    reused = await grpcurl.arun([*ca_args, "-d", request, target, "xporty.cp.v1.IdentityService/Enroll"])
    # Same CSR: the lost-answer replay hands back the same certificate; a new key is refused.
    assert reused.returncode == 0, reused.stderr
    other = json.dumps({"bootstrap_token": token, "csr_pem": make_csr(new_private_key()).decode()})
    refused_again = await grpcurl.arun([*ca_args, "-d", other, target, "xporty.cp.v1.IdentityService/Enroll"])
    assert refused_again.returncode != 0
    assert "Code: Unauthenticated" in refused_again.stderr
    assert "bootstrap token is not valid" in refused_again.stderr
    unknown = json.dumps({"bootstrap_token": "nope", "csr_pem": make_csr(new_private_key()).decode()})
    refused_unknown = await grpcurl.arun([*ca_args, "-d", unknown, target, "xporty.cp.v1.IdentityService/Enroll"])
    assert refused_unknown.returncode != 0
    assert refused_unknown.stderr == refused_again.stderr  # unknown and spent look exactly the same
