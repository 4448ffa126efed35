"""The reflection servicer's answers, request by request (the e2e tests drive it through grpcurl and real servers)."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from xwl_runtime.reflection import V1_SERVICE, V1ALPHA_SERVICE, ReflectionServicer, default_index

Request = reflection_pb2.ServerReflectionRequest


def _servicer() -> ReflectionServicer:
    return ReflectionServicer(["xporty.cp.v1.PolicyService"], default_index())


def _files(response: reflection_pb2.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in response.file_descriptor_response.file_descriptor_proto]


def test_lists_the_given_services_and_both_reflection_versions() -> None:
    names = [s.name for s in _servicer().answer(Request(list_services="")).list_services_response.service]
    assert names == sorted([V1_SERVICE, V1ALPHA_SERVICE, "xporty.cp.v1.PolicyService"])


def test_a_symbol_comes_with_its_file_comments_and_every_import_once() -> None:
    files = _files(_servicer().answer(Request(file_containing_symbol="xporty.cp.v1.PolicyService.WatchPolicies")))
    names = [f.name for f in files]
    assert names[0] == "xporty/cp/v1/policy_service.proto"
    assert len(names) == len(set(names))
    assert {"xporty/cp/v1/policy.proto", "google/protobuf/timestamp.proto"} <= set(names)
    comments = [loc.leading_comments for loc in files[0].source_code_info.location if loc.leading_comments]
    assert any("WatchPolicies" in c for c in comments)
    # json_name is left out so grpcurl keeps printing proto field names (fx_rate), as operators' scripts expect.
    assert all(not fld.HasField("json_name") for f in files for m in f.message_type for fld in m.field)


def test_error_details_and_the_v1_reflection_file_are_served() -> None:
    servicer = _servicer()
    details = _files(servicer.answer(Request(file_containing_symbol="google.rpc.ErrorInfo")))
    assert details[0].name == "google/rpc/error_details.proto"
    v1 = _files(servicer.answer(Request(file_containing_symbol=V1_SERVICE)))
    assert v1[0].name == "grpc/reflection/v1/reflection.proto" and v1[0].package == "grpc.reflection.v1"
    method = v1[0].service[0].method[0]
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    by_name = _files(servicer.answer(Request(file_by_filename="xporty/common/v1/errors.proto")))
    assert by_name[0].enum_type[0].name == "ErrorReason"


def test_unknown_names_and_extensions_are_not_found_and_an_empty_request_is_invalid() -> None:
    servicer = _servicer()
    not_found = grpc.StatusCode.NOT_FOUND.value[0]
    for request in (Request(file_containing_symbol="xporty.nope.v1.X"), Request(file_by_filename="nope.proto"),
                    Request(file_containing_extension=reflection_pb2.ExtensionRequest(
                        containing_type="xporty.cp.v1.PolicyView", extension_number=100)),
                    Request(all_extension_numbers_of_type="xporty.nope.v1.X")):
        answer = servicer.answer(request)
        assert answer.error_response.error_code == not_found
        assert answer.original_request == request
    numbers = servicer.answer(Request(all_extension_numbers_of_type="xporty.cp.v1.PolicyView"))
    assert numbers.all_extension_numbers_response.base_type_name == "xporty.cp.v1.PolicyView"
    assert list(numbers.all_extension_numbers_response.extension_number) == []
    invalid = servicer.answer(Request())
    assert invalid.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_an_index_factory_is_called_by_the_first_request_only() -> None:
    calls: list[int] = []

    def factory():  # noqa: ANN202
        calls.append(1)
        return default_index()

    servicer = ReflectionServicer(["xporty.cp.v1.PolicyService"], factory)
    assert calls == []  # a server that is never asked never builds it
    servicer.answer(Request(file_by_filename="xporty/cp/v1/policy.proto"))
    servicer.answer(Request(file_containing_symbol="xporty.cp.v1.PolicyService"))
    assert calls == [1]
