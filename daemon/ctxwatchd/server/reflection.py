"""Server reflection, as both `grpc.reflection.v1` and `grpc.reflection.v1alpha`.

grpcio-reflection (1.85) implements only v1alpha, while newer tools (grpcurl,
Postman, grpcui) ask v1 first. The two protocols are the same messages under
another package name, so v1 is the same servicer behind a second service
name, and its descriptor is v1alpha's with the package renamed (so that
`describe grpc.reflection.v1.ServerReflection` answers too).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from .handlers import WrappingServer

V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server | WrappingServer) -> None:
    """Serve reflection (v1 and v1alpha) listing `service_names` and both reflection services."""
    _add_v1_descriptor(descriptor_pool.Default())
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE_NAME,
                {
                    "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                        servicer.ServerReflectionInfo,
                        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                    )
                },
            ),
        )
    )


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)
        return  # added by an earlier server in this process
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = V1_FILE, V1_PACKAGE
    proto.ClearField("options")  # v1alpha's options name its own Java/C# packages
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # scalars have none, and must not get an empty one
                field.type_name = _renamed(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type, method.output_type = _renamed(method.input_type), _renamed(method.output_type)
    pool.AddSerializedFile(proto.SerializeToString())


def _renamed(type_name: str) -> str:
    return type_name.replace(".grpc.reflection.v1alpha.", f".{V1_PACKAGE}.")
