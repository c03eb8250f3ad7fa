"""Python grpcio against the octaneweb gateway's gRPC pass-through.

Generates stubs from the project's protos with grpcio-tools (the usual generator) into a
temporary directory, then runs each check below against TARGET (the gateway's host:port) and
prints one JSON line per check: {"check": name, "ok": bool, "detail": str}. Exits 1 if any
check failed. Run by python-grpcio.test.mjs; also runnable by hand:

    target/interop-venv/bin/python tests/interop/python/grpcio_interop.py \
        GATEWAY_HOST:PORT proto/octane [RENDER_SERVER_HOST:PORT]

The render server's address (optional) enables the check that compares the same calls made
straight to it with those made through the gateway.
"""

import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from importlib.resources import files as resource_files

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

BAD_HANDLE = 987654321
OBJECT_TYPE_API_ITEM = 16
# A stream that ends by itself is never expected: every streaming check is bounded.
STREAM_TIMEOUT_S = 20.0


class CheckFailed(Exception):
    """A check saw something other than what the server should answer."""


def expect(condition, what):
    if not condition:
        raise CheckFailed(what)


def generate_stubs(proto_root, out_dir):
    """grpc_tools.protoc over every .proto in proto_root, like a user's build would."""
    well_known = str(resource_files("grpc_tools") / "_proto")
    protos = sorted(name for name in os.listdir(proto_root) if name.endswith(".proto"))
    expect(protos, f"no .proto files in {proto_root}")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    status = protoc.main(args)
    expect(status == 0, f"grpc_tools.protoc exited with {status}")
    sys.path.insert(0, out_dir)
    modules = {}
    for name in ("livelink", "apirender", "callbackstream", "scenegraph", "common"):
        modules[name] = importlib.import_module(f"{name}_pb2")
        modules[f"{name}_grpc"] = importlib.import_module(f"{name}_pb2_grpc")
    return modules


def vec3(pb, x, y, z):
    return pb.Vec3(x=x, y=y, z=z)


def vec_tuple(v):
    return (v.x, v.y, v.z)


def check_unary_camera(channel, m):
    livelink = m["livelink_grpc"].LiveLinkServiceStub(channel)
    pb = m["livelink"]
    livelink.SetCamera(
        pb.CameraState(position=vec3(pb, 6.5, 2.25, -3.75), target=vec3(pb, 0.5, 0.25, 0.0), fov=41.5),
        timeout=10,
    )
    camera = livelink.GetCamera(pb.Empty(), timeout=10)
    expect(camera.HasField("position"), "GetCamera: no position")
    expect(vec_tuple(camera.position) == (6.5, 2.25, -3.75), f"GetCamera position {vec_tuple(camera.position)}")
    expect(vec_tuple(camera.target) == (0.5, 0.25, 0.0), f"GetCamera target {vec_tuple(camera.target)}")
    expect(camera.fov == 41.5, f"GetCamera fov {camera.fov}")
    # with_call: the trailing metadata of a unary call come through the pass-through.
    _, call = livelink.GetCamera.with_call(pb.Empty(), timeout=10)
    expect(call.code() == grpc.StatusCode.OK, f"GetCamera status {call.code()}")
    return f"camera read back: {vec_tuple(camera.position)} fov {camera.fov}"


def grew_somewhere(spp):
    """Whether a grabbed sample count grew from one grab to the next (a restart may land
    between grabs, so the first count is not a floor)."""
    return any(later > earlier for earlier, later in zip(spp, spp[1:]))


def grpc_calls_in_flight():
    """The gateway's octaneweb_calls_in_flight{protocol="grpc"} from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://{TARGET}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('octaneweb_calls_in_flight{protocol="grpc"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    raise CheckFailed("no octaneweb_calls_in_flight for grpc in /metrics")


def check_server_streaming(channel, m):
    engine = m["apirender_grpc"].ApiRenderEngineServiceStub(channel)
    callbacks = m["callbackstream_grpc"].StreamCallbackServiceStub(channel)
    render = m["apirender"]
    empty_pb2 = importlib.import_module("google.protobuf.empty_pb2")
    registered = engine.setOnNewImageCallback(
        render.ApiRenderEngine.setOnNewImageCallbackRequest(
            callback=render.OnNewImageCallbackT(callbackSource="octaneweb-interop-python", callbackId=0),
            userData=9001,
        ),
        timeout=10,
    )
    expect(registered.callbackId > 0, f"setOnNewImageCallback id {registered.callbackId}")
    engine.restartRendering(render.ApiRenderEngine.restartRenderingRequest(), timeout=10)
    stream = callbacks.callbackChannel(empty_pb2.Empty(), timeout=STREAM_TIMEOUT_S)
    new_images = 0
    user_data_seen = False
    spp = []
    try:
        for message in stream:
            if message.WhichOneof("payload") != "newImage":
                continue
            new_images += 1
            user_data_seen = user_data_seen or message.newImage.user_data == 9001
            grabbed = engine.grabRenderResult(render.ApiRenderEngine.grabRenderResultRequest(), timeout=10)
            if grabbed.result and grabbed.renderImages.data:
                image = grabbed.renderImages.data[0]
                expect(len(image.buffer.data) == image.size.x * image.size.y * 4, "buffer size mismatch")
                spp.append(image.tonemappedSamplesPerPixel)
                engine.releaseRenderResult(render.ApiRenderEngine.releaseRenderResultRequest(), timeout=10)
            if new_images >= 3 and user_data_seen and grew_somewhere(spp):
                break
    finally:
        stream.cancel()
    expect(new_images >= 3, f"{new_images} newImage notifications")
    expect(user_data_seen, "no notification carried user data 9001")
    expect(grew_somewhere(spp), f"samples per pixel never grew between grabs: {spp}")
    # Cancelled by the client: the stream reports CANCELLED, not an error from the server.
    expect(stream.code() == grpc.StatusCode.CANCELLED, f"after cancel: {stream.code()}")
    # The gateway sees the cancel and releases the call (its /metrics count drops to 0).
    deadline = time.monotonic() + 5
    while grpc_calls_in_flight() != 0:
        expect(time.monotonic() < deadline, "a gRPC call still in flight 5 s after the client cancelled")
        time.sleep(0.05)
    return f"{new_images} newImage notifications, grabbed spp {spp}"


def check_client_streaming(channel, m):
    livelink = m["livelink_grpc"].LiveLinkServiceStub(channel)
    pb = m["livelink"]
    fovs = [30.0, 35.0, 40.0, 45.0, 50.5]

    def states():
        for i, fov in enumerate(fovs):
            yield pb.CameraState(position=vec3(pb, 5.0 + i, 2.0, 4.0), fov=fov)

    status, call = livelink.StreamCamera.with_call(states(), timeout=10)
    expect(call.code() == grpc.StatusCode.OK, f"StreamCamera status {call.code()}")
    expect(status.message != "", "StreamCamera: empty StreamStatus message")
    camera = livelink.GetCamera(pb.Empty(), timeout=10)
    expect(camera.fov == fovs[-1], f"after StreamCamera fov {camera.fov}, expected {fovs[-1]}")
    expect(vec_tuple(camera.position) == (5.0 + len(fovs) - 1, 2.0, 4.0), f"after StreamCamera position {vec_tuple(camera.position)}")
    return f"StreamStatus: {status.message!r}"


def reflection_exchange(call):
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="livelinkapi.LiveLinkService"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="octaneapi.StreamCallbackService"),
    ]
    responses = list(call(iter(requests), timeout=10))
    expect(len(responses) == len(requests), f"{len(responses)} reflection responses to {len(requests)} requests")
    services = {s.name for s in responses[0].list_services_response.service}
    for name in ("livelinkapi.LiveLinkService", "octaneapi.StreamCallbackService", "octaneapi.ApiRenderEngineService"):
        expect(name in services, f"list_services lacks {name}: {sorted(services)}")
    for response in responses[1:]:
        expect(response.HasField("file_descriptor_response"), f"no file descriptor: {response}")
        expect(len(response.file_descriptor_response.file_descriptor_proto) >= 1, "empty file descriptor response")
    return services


def check_bidi(channel, _m):
    # The stubs grpcio-reflection ships (v1alpha), and v1 through the same message types
    # (v1 and v1alpha are the same messages on the wire).
    alpha = reflection_pb2_grpc.ServerReflectionStub(channel)
    services = reflection_exchange(alpha.ServerReflectionInfo)
    v1 = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    reflection_exchange(v1)
    return f"{len(services)} services listed over v1alpha and v1"


def check_deadline(channel, m):
    callbacks = m["callbackstream_grpc"].StreamCallbackServiceStub(channel)
    empty_pb2 = importlib.import_module("google.protobuf.empty_pb2")
    started = time.monotonic()
    stream = callbacks.callbackChannel(empty_pb2.Empty(), timeout=0.5)
    received = 0
    try:
        for _ in stream:
            received += 1
        raise CheckFailed("the stream ended without an error")
    except grpc.RpcError as error:
        expect(error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"code {error.code()}: {error.details()}")
    elapsed = time.monotonic() - started
    expect(elapsed < 5, f"deadline took {elapsed:.1f} s")
    return f"DEADLINE_EXCEEDED after {elapsed:.2f} s and {received} messages"


def check_status_codes(channel, m):
    item = m["scenegraph_grpc"].ApiItemServiceStub(channel)
    scene = m["scenegraph"]
    common = m["common"]
    try:
        item.name(
            scene.ApiItem.nameRequest(objectPtr=common.ObjectRef(handle=BAD_HANDLE, type=OBJECT_TYPE_API_ITEM)),
            timeout=10,
        )
        raise CheckFailed("a bad handle succeeded")
    except grpc.RpcError as error:
        expect(error.code() == grpc.StatusCode.NOT_FOUND, f"bad handle: {error.code()}: {error.details()}")
        expect(f"no object with handle {BAD_HANDLE}" in (error.details() or ""), f"bad handle details: {error.details()}")
    unknown = channel.unary_unary(
        "/livelinkapi.LiveLinkService/NoSuchMethod",
        request_serializer=lambda _: b"",
        response_deserializer=lambda data: data,
    )
    try:
        unknown(None, timeout=10)
        raise CheckFailed("an unknown method succeeded")
    except grpc.RpcError as error:
        expect(error.code() == grpc.StatusCode.UNIMPLEMENTED, f"unknown method: {error.code()}: {error.details()}")
    return "NOT_FOUND for a bad handle, UNIMPLEMENTED for an unknown method"


def check_metadata(channel, m):
    livelink = m["livelink_grpc"].LiveLinkServiceStub(channel)
    pb = m["livelink"]
    # Custom request metadata (text and binary) must not upset the pass-through.
    _, call = livelink.GetCamera.with_call(
        pb.Empty(),
        timeout=10,
        metadata=(("x-interop-client", "grpcio"), ("x-interop-bin", b"\x00\x01\x02")),
    )
    expect(call.code() == grpc.StatusCode.OK, f"status {call.code()}")
    initial = dict(call.initial_metadata() or ())
    trailing = call.trailing_metadata()
    expect(trailing is not None, "no trailing metadata object")
    return f"initial metadata keys {sorted(initial)}"


def check_aio_interleaved_bidi(_channel, m):
    """grpc.aio: bidi with each request answered before the next is written (the pass-through
    must not wait for the client's half-close), then a server stream cancelled by the client."""
    import asyncio

    from grpc_reflection.v1alpha import reflection_pb2_grpc as reflection_grpc

    async def run():
        async with grpc.aio.insecure_channel(TARGET) as channel:
            stub = reflection_grpc.ServerReflectionStub(channel)
            call = stub.ServerReflectionInfo(timeout=10)
            answered = []
            for symbol in ("livelinkapi.LiveLinkService", "octaneapi.ApiItemService", "octaneapi.StreamCallbackService"):
                await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
                response = await asyncio.wait_for(call.read(), timeout=5)
                expect(response is not grpc.aio.EOF, f"stream ended before the answer for {symbol}")
                expect(response.HasField("file_descriptor_response"), f"no descriptor for {symbol}")
                answered.append(symbol)
            await call.done_writing()
            expect(await call.read() is grpc.aio.EOF, "more answers than requests")
            expect(await call.code() == grpc.StatusCode.OK, f"bidi status {await call.code()}")

            callbacks = m["callbackstream_grpc"].StreamCallbackServiceStub(channel)
            empty_pb2 = importlib.import_module("google.protobuf.empty_pb2")
            stream = callbacks.callbackChannel(empty_pb2.Empty(), timeout=10)
            for _ in range(2):
                expect(await asyncio.wait_for(stream.read(), timeout=5) is not grpc.aio.EOF, "callbackChannel ended")
            stream.cancel()
            expect(stream.cancelled(), "callbackChannel not cancelled")
            # The channel stays usable after a cancelled stream.
            camera = await m["livelink_grpc"].LiveLinkServiceStub(channel).GetCamera(m["livelink"].Empty(), timeout=10)
            expect(camera.HasField("fov"), "GetCamera after cancel: no fov")
            return answered

    answered = asyncio.run(run())
    return f"{len(answered)} interleaved reflection answers; stream cancelled; channel still serves"


def check_absent_from_schema(channel, _m):
    """grpc.health.v1 is in no proto the gateway loaded; the pass-through carries it anyway
    (grpcio-health-checking's stubs): unary Check and the server-streaming Watch."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    answer = health.Check(health_pb2.HealthCheckRequest(service="livelinkapi.LiveLinkService"), timeout=10)
    expect(answer.status == serving, f"Check: status {answer.status}")
    try:
        health.Check(health_pb2.HealthCheckRequest(service="octaneweb.interop.NoSuchService"), timeout=10)
        raise CheckFailed("Check of an unknown service succeeded")
    except grpc.RpcError as error:
        expect(error.code() == grpc.StatusCode.NOT_FOUND, f"Check unknown: {error.code()}: {error.details()}")
    watch = health.Watch(health_pb2.HealthCheckRequest(service="octaneapi.StreamCallbackService"), timeout=10)
    try:
        first = next(watch)
        expect(first.status == serving, f"Watch: status {first.status}")
    finally:
        watch.cancel()
    return "grpc.health.v1 Check and Watch answered SERVING through the gateway"


def call_outcome(callable_, request):
    """What a client can see of one unary call: code, details, metadata (less the date)."""
    try:
        _, call = callable_.with_call(request, timeout=10)
        code, details = call.code(), call.details()
        initial, trailing = call.initial_metadata(), call.trailing_metadata()
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
        initial, trailing = error.initial_metadata(), error.trailing_metadata()

    def visible(metadata):
        return sorted((k, v) for k, v in (metadata or ()) if k != "date")

    return {"code": code.name, "details": details, "initial": visible(initial), "trailing": visible(trailing)}


def check_same_as_upstream(channel, m):
    """The same calls straight to the render server and through the gateway: a grpcio client
    sees the same codes, messages and metadata."""
    if not UPSTREAM:
        raise CheckFailed("no upstream address given")
    scene, common, livelink = m["scenegraph"], m["common"], m["livelink"]
    calls = [
        ("GetCamera", lambda ch: m["livelink_grpc"].LiveLinkServiceStub(ch).GetCamera, livelink.Empty()),
        (
            "bad handle",
            lambda ch: m["scenegraph_grpc"].ApiItemServiceStub(ch).name,
            scene.ApiItem.nameRequest(objectPtr=common.ObjectRef(handle=BAD_HANDLE, type=OBJECT_TYPE_API_ITEM)),
        ),
        ("missing objectPtr", lambda ch: m["scenegraph_grpc"].ApiItemServiceStub(ch).name, scene.ApiItem.nameRequest()),
        ("GetFile outside the root", lambda ch: m["livelink_grpc"].LiveLinkServiceStub(ch).GetFile, livelink.FileRequest(filepath="../../etc/passwd")),
        (
            "unknown method",
            lambda ch: ch.unary_unary(
                "/livelinkapi.LiveLinkService/NoSuchMethod",
                request_serializer=lambda _: b"",
                response_deserializer=lambda data: data,
            ),
            None,
        ),
    ]
    differences = []
    with grpc.insecure_channel(UPSTREAM) as direct:
        for name, stub_method, request in calls:
            via_gateway = call_outcome(stub_method(channel), request)
            straight = call_outcome(stub_method(direct), request)
            if (via_gateway["code"], via_gateway["details"]) != (straight["code"], straight["details"]):
                differences.append(f"{name}: gateway {via_gateway} vs upstream {straight}")
            for part in ("initial", "trailing"):
                # Everything the render server sends arrives ...
                missing = [kv for kv in straight[part] if kv not in via_gateway[part]]
                if missing:
                    differences.append(f"{name}: {part} metadata {missing} lost")
                # ... and the gateway adds nothing of its own.
                extra = {k for k, _ in via_gateway[part]} - {k for k, _ in straight[part]}
                unexpected = extra - GATEWAY_OWN_HEADERS
                if unexpected:
                    differences.append(f"{name}: {part} metadata {sorted(unexpected)} added by the gateway")
    expect(not differences, "\n".join(differences))
    return f"{len(calls)} calls: same codes, messages and metadata through the gateway as straight to the render server"


# Metadata the gateway may add to native gRPC answers: none (the HTTP `date` header aside,
# which call_outcome leaves out), so a grpcio client cannot tell it from the render server.
GATEWAY_OWN_HEADERS = set()


CHECKS = [
    ("unary", check_unary_camera),
    ("server_streaming", check_server_streaming),
    ("client_streaming", check_client_streaming),
    ("bidi_streaming", check_bidi),
    ("deadline", check_deadline),
    ("status_codes", check_status_codes),
    ("metadata", check_metadata),
    ("aio", check_aio_interleaved_bidi),
    ("absent_from_schema", check_absent_from_schema),
    ("same_as_upstream", check_same_as_upstream),
]

# The gateway's host:port and the render server's, set by main().
TARGET = ""
UPSTREAM = ""


def main():
    if len(sys.argv) not in (3, 4):
        print("usage: grpcio_interop.py GATEWAY_HOST:PORT PROTO_ROOT [RENDER_SERVER_HOST:PORT]", file=sys.stderr)
        return 2
    global TARGET, UPSTREAM  # noqa: PLW0603 - set once, before the checks run
    target, proto_root = sys.argv[1], sys.argv[2]
    TARGET = target
    UPSTREAM = sys.argv[3] if len(sys.argv) == 4 else ""
    failed = 0
    with tempfile.TemporaryDirectory(prefix="octaneweb-grpcio-") as out_dir:
        try:
            modules = generate_stubs(proto_root, out_dir)
        except Exception:  # noqa: BLE001 - reported as a failed check
            print(json.dumps({"check": "generate_stubs", "ok": False, "detail": traceback.format_exc()}), flush=True)
            return 1
        print(json.dumps({"check": "generate_stubs", "ok": True, "detail": out_dir}), flush=True)
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            for name, check in CHECKS:
                try:
                    detail = check(channel, modules)
                    print(json.dumps({"check": name, "ok": True, "detail": detail}), flush=True)
                except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
                    failed += 1
                    print(json.dumps({"check": name, "ok": False, "detail": traceback.format_exc()}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
