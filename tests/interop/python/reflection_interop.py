"""grpcio-reflection (PyPI) against the gateway's own reflection service, with no .proto file:
list the services, resolve a LiveLink method's descriptors by reflection, build its request
from the reflected descriptor and call it through the gateway's port.

usage: reflection_interop.py GATEWAY_HOST:PORT

Prints one JSON line per check: {"check": name, "ok": bool, "detail": text}.
"""

import json
import sys
import traceback

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

LIVELINK = "livelinkapi.LiveLinkService"


class CheckFailed(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise CheckFailed(what)


def check_list_services(channel, state):
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    for name in (
        LIVELINK,
        "octaneapi.ApiItemService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ):
        expect(name in services, f"{name} not listed: {sorted(services)}")
    state["database"] = database
    return f"{len(services)} services listed over v1alpha"


def check_list_services_v1(channel, _state):
    # v1 and v1alpha are the same messages on the wire; grpcio-reflection ships v1alpha's.
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    expect(len(answers) == 1, f"{len(answers)} answers to one request")
    services = {s.name for s in answers[0].list_services_response.service}
    expect(LIVELINK in services, f"{LIVELINK} not listed over v1: {sorted(services)}")
    return f"{len(services)} services listed over v1"


def check_resolve_method(_channel, state):
    database = state["database"]
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(LIVELINK)
    set_camera = service.methods_by_name["SetCamera"]
    get_camera = service.methods_by_name["GetCamera"]
    expect(set_camera.input_type.full_name == "livelinkapi.CameraState", set_camera.input_type.full_name)
    expect(get_camera.output_type.full_name == "livelinkapi.CameraState", get_camera.output_type.full_name)
    fields = sorted(f.name for f in set_camera.input_type.fields)
    expect(fields == ["fov", "position", "target", "up"], f"CameraState fields {fields}")
    # The file came with its comments (source info kept by the gateway).
    file_proto = database.FindFileContainingSymbol(LIVELINK)
    comments = [loc.leading_comments for loc in file_proto.source_code_info.location]
    expect(
        any("Getters are marked NO_SIDE_EFFECTS" in c for c in comments),
        f"no service comment in {file_proto.name}'s source info ({len(comments)} locations)",
    )
    state["pool"] = pool
    state["service"] = service
    return f"{service.full_name}: {len(service.methods)} methods resolved from {file_proto.name}"


def unary(channel, service, method):
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    return request_class, call


def check_call_by_reflection(channel, state):
    service = state["service"]
    camera_class, set_camera = unary(channel, service, service.methods_by_name["SetCamera"])
    empty_class, get_camera = unary(channel, service, service.methods_by_name["GetCamera"])
    # Values exactly representable as float32, so the read-back compares with ==.
    request = camera_class()
    request.position.x, request.position.y, request.position.z = 3.25, -1.5, 7.0
    request.fov = 47.5
    set_camera(request, timeout=10)
    camera = get_camera(empty_class(), timeout=10)
    position = (camera.position.x, camera.position.y, camera.position.z)
    expect(position == (3.25, -1.5, 7.0), f"position after SetCamera: {position}")
    expect(camera.fov == 47.5, f"fov after SetCamera: {camera.fov}")
    return f"SetCamera then GetCamera with reflected types: position {position}, fov {camera.fov}"


CHECKS = [
    ("list_services", check_list_services),
    ("list_services_v1", check_list_services_v1),
    ("resolve_method", check_resolve_method),
    ("call_by_reflection", check_call_by_reflection),
]


def main():
    if len(sys.argv) != 2:
        print("usage: reflection_interop.py GATEWAY_HOST:PORT", file=sys.stderr)
        return 2
    failed = 0
    state = {}
    with grpc.insecure_channel(sys.argv[1]) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        for name, check in CHECKS:
            try:
                detail = check(channel, state)
                print(json.dumps({"check": name, "ok": True, "detail": detail}), flush=True)
            except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
                failed += 1
                print(json.dumps({"check": name, "ok": False, "detail": traceback.format_exc()}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
