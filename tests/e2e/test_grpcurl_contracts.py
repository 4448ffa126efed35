"""grpcurl as an operator reads the contracts: reflection v1 and v1alpha, comments in ``describe``, and error
details printed readably both through reflection and from ``proto/`` files alone (``-proto``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.e2e.conftest import Stack
from tests.support import grpcurl
from xwl_runtime.identity import Identity, pinned_name
from xwl_runtime.tls import secure_channel

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"


def _tls(stack: Stack, expected: Identity | None = None) -> list[str]:
    return grpcurl.tls_args(*stack.ops_files(), servername=pinned_name(expected or Identity.cp()))


async def test_describe_shows_the_contract_comments(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    described = await grpcurl.arun([*_tls(stack), stack.cp_target, "describe", "xporty.cp.v1.PolicyService"])
    assert described.returncode == 0, described.stderr
    source = (PROTO / "xporty" / "cp" / "v1" / "policy_service.proto").read_text()
    service_comment = re.search(r"\n// (PolicyService[^\n]*)\nservice PolicyService", source)
    assert service_comment, "the service's own comment in policy_service.proto"
    assert service_comment.group(1) in described.stdout
    message = await grpcurl.arun([*_tls(stack), stack.cp_target, "describe", "xporty.cp.v1.GetPoliciesRequest"])
    assert message.returncode == 0, message.stderr
    assert "//" in message.stdout  # field comments
    # The error reasons are part of the served contracts too.
    reasons = await grpcurl.arun([*_tls(stack), stack.cp_target, "describe", "xporty.common.v1.ErrorReason"])
    assert reasons.returncode == 0, reasons.stderr
    assert "IDEMPOTENCY_KEY_REUSED = 54;" in reasons.stdout and "used before with a different request" in reasons.stdout


async def _reflect(channel: grpc.aio.Channel, version: str, request: reflection_pb2.ServerReflectionRequest
                   ) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([request]), timeout=10)
    responses = [r async for r in call]
    assert len(responses) == 1
    return responses[0]


async def test_reflection_v1_and_v1alpha_both_answer_with_source_info(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    async with secure_channel(stack.node_target, stack.pki.material(Identity.ops("alice")),
                              expected=Identity.wl("wl-a")) as channel:
        for version in ("v1", "v1alpha"):
            listed = await _reflect(channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
            names = {s.name for s in listed.list_services_response.service}
            assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
                    "grpc.health.v1.Health", "xporty.node.v1.StorefrontService"} <= names
            found = await _reflect(channel, version, reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="xporty.node.v1.StorefrontService"))
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in found.file_descriptor_response.file_descriptor_proto]
            assert files[0].name == "xporty/node/v1/storefront_service.proto"
            assert files[0].source_code_info.location, "descriptors are served with their comments"
            assert {"xporty/common/v1/money.proto", "google/protobuf/timestamp.proto"} <= {f.name for f in files}
            missing = await _reflect(channel, version, reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="xporty.nope.v1.Nothing"))
            assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def _error_info(stderr: str) -> dict[str, object]:
    """The ErrorInfo detail grpcurl printed (as JSON after the ``Details:`` header)."""
    assert "Details:" in stderr, stderr
    start = stderr.index("{", stderr.index("Details:"))
    text = "\n".join(line.split("\t", 1)[-1] for line in stderr[start:].splitlines())
    detail, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(detail, dict)
    return detail


async def test_error_details_are_readable_with_reflection_and_with_proto_files(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    request = ["-d", json.dumps({"wl_id": "wl-nobody"})]
    method = "xporty.cp.v1.PolicyService/GetPolicies"
    with_reflection = await grpcurl.arun([*_tls(stack), *request, stack.cp_target, method])
    with_protos = await grpcurl.arun([*_tls(stack), "-import-path", str(PROTO),
                                      "-proto", "xporty/cp/v1/policy_service.proto",
                                      "-proto", "google/rpc/error_details.proto", *request, stack.cp_target, method])
    for result in (with_reflection, with_protos):
        assert result.returncode != 0
        assert "Code: NotFound" in result.stderr, result.stderr
        info = _error_info(result.stderr)
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert info["reason"] == "UNKNOWN_WL" and info["domain"] == "xporty"
        assert info["metadata"] == {"wl_id": "wl-nobody"}
