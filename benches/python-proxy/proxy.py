"""The baseline octaneweb is measured against: a JSON-to-gRPC proxy built the way the original
LiveLink proxy was (aiohttp + grpc.aio, generated message classes filled from JSON).

It compiles octaneweb's own protos (proto/octane) with grpcio-tools at start, so it needs no
checked-in generated code. Usage:

    python proxy.py --listen 127.0.0.1:51024 --upstream 127.0.0.1:51022
"""

import argparse
import asyncio
import importlib
import os
import sys
import tempfile

import grpc
from aiohttp import web
from google.protobuf import json_format
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto", "octane")


def compile_protos(out_dir):
    """Generate *_pb2.py and *_pb2_grpc.py for every proto into out_dir."""
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = sorted(f for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out_dir)
    return [f[:-len(".proto")] for f in files]


def build_routes(modules, channel):
    """Map 'package.Service' and its short forms to (method name -> (stub method, request class))."""
    table = {}
    for name in modules:
        pb2 = importlib.import_module(f"{name}_pb2")
        pb2_grpc = importlib.import_module(f"{name}_pb2_grpc")
        for service in pb2.DESCRIPTOR.services_by_name.values():
            stub = getattr(pb2_grpc, f"{service.name}Stub")(channel)
            methods = {}
            for method in service.methods:
                if method.client_streaming or method.server_streaming:
                    continue
                request_class = _message_class(method.input_type)
                methods[method.name] = (getattr(stub, method.name), request_class)
            for key in {service.full_name, service.name, service.name.removesuffix("Service")}:
                table[key] = methods
    return table


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def make_app(table):
    async def call(request):
        service = request.match_info["service"]
        method = request.match_info["method"]
        methods = table.get(service)
        if methods is None or method not in methods:
            return web.json_response({"success": False, "error": "no such method"}, status=404)
        stub_method, request_class = methods[method]
        body = await request.text()
        message = request_class()
        try:
            if body.strip():
                json_format.Parse(body, message)
        except json_format.ParseError as error:
            return web.json_response({"success": False, "error": str(error)}, status=400)
        try:
            response = await stub_method(message, timeout=30)
        except grpc.aio.AioRpcError as error:
            return web.json_response({"success": False, "error": error.details()}, status=500)
        data = json_format.MessageToDict(response, preserving_proto_field_name=True)
        return web.json_response({"success": True, "data": data})

    async def health(_request):
        return web.json_response({"status": "ok", "connected": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/{service}/{method}", call)
    return app


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:51024")
    parser.add_argument("--upstream", default="127.0.0.1:51022")
    args = parser.parse_args()
    out_dir = tempfile.mkdtemp(prefix="octaneweb-python-proxy-")
    modules = compile_protos(out_dir)
    channel = grpc.aio.insecure_channel(
        args.upstream,
        options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)],
    )
    app = make_app(build_routes(modules, channel))
    host, port = args.listen.rsplit(":", 1)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    await site.start()
    print(f"python proxy listening on http://{host}:{port}/", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
