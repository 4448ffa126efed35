"""Server reflection, v1 and v1alpha, serving descriptors WITH their comments.

grpcio-reflection implements only ``grpc.reflection.v1alpha`` and re-serializes descriptors from the runtime pool,
which has no source info, so ``grpcurl describe`` showed no documentation. This servicer answers both versions
(their messages are identical on the wire, so v1alpha's classes serve v1 too) from the FileDescriptorSet that
``tools/generate_protos.py`` writes with source info (``xporty/contracts.binpb``: every contract file and its
imports, google.rpc's error details included, so grpcurl also prints error details readably). Files it does not
hold (health, reflection itself) come from the runtime pool.

Reflection needs no authorization of its own: the pipeline's table opens both methods to every authenticated caller.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
METHOD = "ServerReflectionInfo"
CONTRACTS_PACKAGE = "xporty"
CONTRACTS_FILE = "contracts.binpb"

Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse


def load_contracts() -> descriptor_pb2.FileDescriptorSet:
    """The generated FileDescriptorSet of the contracts (with comments), shipped inside the ``xporty`` package."""
    data = resources.files(CONTRACTS_PACKAGE).joinpath(CONTRACTS_FILE).read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _runtime_file(descriptor: Any) -> descriptor_pb2.FileDescriptorProto:
    """A runtime FileDescriptor as a proto (``Any``: upb's descriptor class is not the one the stubs declare)."""
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def _v1_reflection_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto: v1alpha's file under the v1 package (the two differ only by name)."""
    proto = _runtime_file(reflection_pb2.DESCRIPTOR)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    for message in proto.message_type:
        for fld in message.field:
            if fld.HasField("type_name"):
                fld.type_name = fld.type_name.replace(old, new)
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(old, new)
        method.output_type = method.output_type.replace(old, new)
    return proto


def _without_json_names(proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """A copy without ``json_name``: grpcurl then prints and accepts proto field names (``fx_rate``), as it always
    did with this server (the runtime pool omits them), so operators' commands and scripts keep working."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(proto)
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for fld in (*message.field, *message.extension):
            fld.ClearField("json_name")
    return copy


class ReflectionIndex:
    """Files by name (serialized, comments kept) and a pool to find the file that defines a symbol."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._serialized: dict[str, bytes] = {}
        self._pool = descriptor_pool.DescriptorPool()
        for original in files:
            if original.name in self._files:
                continue
            proto = _without_json_names(original)
            self._files[proto.name] = proto
            self._serialized[proto.name] = proto.SerializeToString()
            self._pool.Add(proto)

    def file_closure(self, name: str) -> list[bytes]:
        """``name`` then every file it imports, transitively, each once."""
        seen: dict[str, bytes] = {}
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen or current not in self._files:
                continue
            seen[current] = self._serialized[current]
            pending.extend(self._files[current].dependency)
        return list(seen.values())

    def has_file(self, name: str) -> bool:
        return name in self._files

    def file_of_symbol(self, symbol: str) -> str | None:
        """The file defining ``symbol``; a method, field or enum value is found through its parent."""
        for name in (symbol, symbol.rpartition(".")[0]):
            try:
                return str(self._pool.FindFileContainingSymbol(name).name)
            except KeyError:
                continue
        return None

    def has_message(self, name: str) -> bool:
        try:
            self._pool.FindMessageTypeByName(name)
        except KeyError:
            return False
        return True


@functools.cache
def default_index() -> ReflectionIndex:
    """The contracts (with comments), then health and reflection from the runtime pool."""
    extra = [_runtime_file(d) for d in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)]
    return ReflectionIndex([*load_contracts().file, *extra, _v1_reflection_file()])


class ReflectionServicer:
    """Answers ServerReflectionInfo streams for both reflection versions."""

    def __init__(self, service_names: Sequence[str], index: ReflectionIndex | Callable[[], ReflectionIndex]) -> None:
        self._services = tuple(sorted({*service_names, V1_SERVICE, V1ALPHA_SERVICE}))
        self._index_or_factory = index

    @property
    def _index(self) -> ReflectionIndex:
        """The index, built by the first request when a factory was given (≈ 3 MiB resident: every contract
        file with its comments, serialized, and a descriptor pool; most processes are never asked)."""
        if not isinstance(self._index_or_factory, ReflectionIndex):
            self._index_or_factory = self._index_or_factory()
        return self._index_or_factory

    def answer(self, request: Request) -> Response:
        """One response for one request (errors are responses too, as the protocol wants)."""
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            return Response(original_request=request, list_services_response=reflection_pb2.ListServiceResponse(
                service=[reflection_pb2.ServiceResponse(name=n) for n in self._services]))
        if kind == "file_by_filename":
            name: str | None = request.file_by_filename
        elif kind == "file_containing_symbol":
            name = self._index.file_of_symbol(request.file_containing_symbol)
        elif kind == "all_extension_numbers_of_type" and self._index.has_message(request.all_extension_numbers_of_type):
            # The contracts declare no extensions.
            numbers = reflection_pb2.ExtensionNumberResponse(base_type_name=request.all_extension_numbers_of_type)
            return Response(original_request=request, all_extension_numbers_response=numbers)
        elif kind in ("file_containing_extension", "all_extension_numbers_of_type"):
            name = None
        else:
            return _error(request, grpc.StatusCode.INVALID_ARGUMENT)
        if name is None or not self._index.has_file(name):
            return _error(request, grpc.StatusCode.NOT_FOUND)
        return Response(original_request=request, file_descriptor_response=reflection_pb2.FileDescriptorResponse(
            file_descriptor_proto=self._index.file_closure(name)))

    async def info(self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext[Request, Response]
                   ) -> AsyncIterator[Response]:
        async for request in requests:
            yield self.answer(request)


def _error(request: Request, code: grpc.StatusCode) -> Response:
    number, text = code.value
    return Response(original_request=request, error_response=reflection_pb2.ErrorResponse(
        error_code=number, error_message=text))


def add_reflection(server: grpc.aio.Server, service_names: Sequence[str],
                   index: ReflectionIndex | Callable[[], ReflectionIndex]) -> None:
    """Register reflection v1 and v1alpha on ``server`` for ``service_names`` (``index`` may be a factory that
    the first reflection request calls)."""
    servicer = ReflectionServicer(service_names, index)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.info, request_deserializer=Request.FromString, response_serializer=Response.SerializeToString)
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(service, {METHOD: handler}) for service in (V1_SERVICE, V1ALPHA_SERVICE)
    ])
