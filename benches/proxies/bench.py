#!/usr/bin/env python3
"""Proxy comparison for issue 12, item 5: what one unary call costs through each proxy.

Run it through `benches/run-proxies`, which installs h2load and nginx when missing and builds
the binaries. This script starts every process, checks one call per target, drives each
target with h2load, reads CPU time from /proc and prints medians as Markdown.

Processes (each its own process, ephemeral loopback ports, all killed on exit):

- `octaneweb render-server` (64x32, stops refining after one sample, so it is idle and
  rendering does not compete for the CPU);
- `octaneweb serve --upstream RENDER` (the gateway, default settings, log to /dev/null);
- `tonic-web-proxy --upstream RENDER` (benches/load/src/bin/tonic-web-proxy.rs);
- nginx with `grpc_pass` to the render server (config written into a temp dir);
- h2load, one process per round (one thread), the load generator.

Targets, all `livelinkapi.LiveLinkService/GetCamera` with an empty request:

  a  direct       native gRPC to the render server
  b  passthrough  native gRPC to the gateway
  c  json         the gateway's original-proxy JSON route, POST /LiveLink/GetCamera, {}
  d  connect      the gateway's Connect unary JSON (Connect-Protocol-Version: 1), {}
  e  grpcweb      gRPC-Web binary to the gateway
  f  tonicweb     gRPC-Web binary to the tonic-web forwarding proxy
  g  nginx        native gRPC to nginx grpc_pass

Per round and process: CPU = utime + stime from /proc/PID/stat (all threads) before and
after the round; for h2load, the rusage of the whole process (wait4), which is the same
counters read at its exit. CPU per call = that delta / calls h2load counted as succeeded.
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GRPC_PATH = "/livelinkapi.LiveLinkService/GetCamera"
JSON_ROUTE_PATH = "/LiveLink/GetCamera"
# A gRPC / gRPC-Web frame holding the empty message: flag 0, length 0 (big-endian u32).
EMPTY_FRAME = b"\x00\x00\x00\x00\x00"

# Request kinds: headers and body, the same for the check call and for h2load.
KINDS = {
    "grpc": {
        "headers": ["content-type: application/grpc", "te: trailers"],
        "body": EMPTY_FRAME,
    },
    "json": {"headers": ["content-type: application/json"], "body": b"{}"},
    # Without Connect-Protocol-Version the gateway takes a POST of application/json to
    # /package.Service/Method as the original proxy's JSON route (docs/protocols.md), so the
    # header is what makes this a Connect call.
    "connect": {
        "headers": ["content-type: application/json", "connect-protocol-version: 1"],
        "body": b"{}",
    },
    "grpcweb": {
        "headers": ["content-type: application/grpc-web+proto", "x-grpc-web: 1"],
        "body": EMPTY_FRAME,
    },
}

# key, name, what serves it, request kind, path
TARGETS = [
    ("a", "direct gRPC → render server", "render", "grpc", GRPC_PATH),
    ("b", "gateway gRPC pass-through", "gateway", "grpc", GRPC_PATH),
    ("c", "gateway JSON route (POST /LiveLink/GetCamera)", "gateway", "json", JSON_ROUTE_PATH),
    ("d", "gateway Connect unary JSON", "gateway", "connect", GRPC_PATH),
    ("e", "gateway gRPC-Web", "gateway", "grpcweb", GRPC_PATH),
    ("f", "tonic-web forwarding proxy, gRPC-Web", "tonicweb", "grpcweb", GRPC_PATH),
    ("g", "nginx grpc_pass", "nginx", "grpc", GRPC_PATH),
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(message, file=sys.stderr, flush=True)


def die(message):
    raise SystemExit(f"run-proxies: {message}")


# ---------------------------------------------------------------------------------------
# Processes


def _die_with_parent():
    """In the child before exec: get SIGTERM when this script dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Processes:
    """Every process this script starts, so that all of them are stopped on exit."""

    def __init__(self):
        self.started = []  # (name, Popen)
        self.extra_pids = []  # (name, pid, start time) of nginx workers

    def spawn(self, name, argv, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kwargs)
        self.started.append((name, process))
        return process

    def forget(self, process):
        self.started = [(n, p) for (n, p) in self.started if p is not process]

    def stop_all(self):
        for name, process in reversed(self.started):
            if process.poll() is None:
                try:
                    process.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for name, process in reversed(self.started):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {process.pid}) ignored SIGTERM; killing it")
                process.kill()
                process.wait()
            except ChildProcessError:
                pass
        # nginx workers exit with their master; make sure, by pid (checked to be the same
        # process through its start time).
        for name, pid, start in self.extra_pids:
            if process_start_time(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started = []
        self.extra_pids = []


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 = index 0), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def cpu_seconds(pid):
    """utime + stime of process PID (all its threads), in seconds, or None if gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_start_time(pid):
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def upstream_connections(pids, port):
    """Established TCP connections that processes PIDS hold to 127.0.0.1:PORT."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                count += 1
    return count


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, process, what, log_file=None, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if process.poll() is not None:
            tail = ""
            if log_file and os.path.exists(log_file):
                with open(log_file, errors="replace") as f:
                    tail = "\n" + f.read()[-2000:]
            die(f"{what} exited with status {process.returncode} before listening{tail}")
        if time.monotonic() > deadline:
            die(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# nginx


def nginx_version(nginx):
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    if not match:
        die(f"cannot tell the version of {nginx}: {out.stderr.strip()}")
    return tuple(int(x) for x in match.groups())


def nginx_config(directory, port, upstream_port, version, upstream_keepalive):
    # `http2 on;` exists from 1.25.1; older versions (Debian 12 has 1.22) take it on listen.
    if version >= (1, 25, 1):
        listen = f"listen 127.0.0.1:{port};\n        http2 on;"
    else:
        listen = f"listen 127.0.0.1:{port} http2;"
    temp = {k: os.path.join(directory, k) for k in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    keepalive = (
        f"""
        # Idle upstream connections kept per worker. nginx's grpc module does not multiplex:
        # each call in flight has its own upstream HTTP/2 connection (64 here), and without
        # `keepalive` every call would open and close one. Kept above the calls in flight so
        # that none is closed between calls.
        keepalive {upstream_keepalive};
        keepalive_requests 4294967295;
        keepalive_timeout 300s;"""
        if upstream_keepalive > 0
        else "\n        # no keepalive: a new upstream connection per call"
    )
    return f"""# Written by benches/proxies/bench.py.
worker_processes 1;
daemon off;
master_process on;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};

    upstream render_server {{
        server 127.0.0.1:{upstream_port};{keepalive}
    }}

    server {{
        {listen}
        # Client connections: HTTP/2 requests per connection before nginx closes it (default
        # 1000, which h2load would pass within a round).
        keepalive_requests 4294967295;
        keepalive_timeout 300s;

        location / {{
            grpc_pass grpc://render_server;
        }}
    }}
}}
"""


# ---------------------------------------------------------------------------------------
# Check calls


def parse_curl_headers(text):
    """Status and headers (then trailers) of one curl -D dump."""
    status = None
    fields = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("HTTP/"):
            parts = line.split()
            status = int(parts[1]) if len(parts) > 1 else None
            fields = []
        elif ":" in line:
            name, value = line.split(":", 1)
            fields.append((name.strip().lower(), value.strip()))
    return status, fields


def frames(body):
    """(flag, payload) of each gRPC / gRPC-Web frame; raises on a truncated body."""
    out = []
    while body:
        if len(body) < 5:
            raise ValueError(f"{len(body)} stray bytes after the frames")
        flag, length = body[0], int.from_bytes(body[1:5], "big")
        if len(body) < 5 + length:
            raise ValueError("truncated frame")
        out.append((flag, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def check_call(curl, key, port, kind, path, work):
    """One call with curl (h2c prior knowledge); returns a short description of the answer,
    or dies: h2load only sees HTTP statuses, and gRPC answers 200 even on errors."""
    spec = KINDS[kind]
    body_file = os.path.join(work, f"check-{key}.body")
    head_file = os.path.join(work, f"check-{key}.head")
    request_file = os.path.join(work, f"request-{kind}")
    argv = [curl, "-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", body_file,
            "-D", head_file, "--data-binary", f"@{request_file}"]
    for header in spec["headers"]:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        die(f"check call for target {key} failed: curl: {done.stderr.strip()}")
    with open(head_file, errors="replace") as f:
        status, fields = parse_curl_headers(f.read())
    with open(body_file, "rb") as f:
        body = f.read()
    problem = None
    message = None
    if status != 200:
        problem = f"HTTP {status}"
    elif kind == "grpc":
        grpc_status = [v for (n, v) in fields if n == "grpc-status"]
        grpc_message = [v for (n, v) in fields if n == "grpc-message"]
        if grpc_status != ["0"]:
            problem = f"grpc-status {grpc_status or 'missing'} {grpc_message}"
        else:
            try:
                parsed = frames(body)
            except ValueError as error:
                parsed, problem = [], str(error)
            if not problem and (len(parsed) != 1 or parsed[0][0] != 0 or not parsed[0][1]):
                problem = f"expected one non-empty message frame, got {parsed!r}"
            elif not problem:
                message = parsed[0][1]
    elif kind == "grpcweb":
        try:
            parsed = frames(body)
        except ValueError as error:
            parsed, problem = [], str(error)
        if not problem:
            data = [p for (flag, p) in parsed if not flag & 0x80]
            trailers = b"".join(p for (flag, p) in parsed if flag & 0x80).decode(errors="replace")
            trailer_status = re.findall(r"(?im)^grpc-status:\s*(\S+)\s*$", trailers)
            header_status = [v for (n, v) in fields if n == "grpc-status"]
            if trailer_status != ["0"]:
                problem = f"trailer frame {trailers!r}, header grpc-status {header_status}"
            elif len(data) != 1 or not data[0]:
                problem = f"expected one non-empty message frame, got {len(data)}"
            else:
                message = data[0]
    else:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if kind == "json":
            if not (isinstance(answer, dict) and answer.get("success") is True
                    and isinstance(answer.get("data"), dict) and "fov" in answer["data"]):
                problem = f"not a camera in {{success, data}}: {body[:300]!r}"
        elif not (isinstance(answer, dict) and "fov" in answer and "success" not in answer
                  and "code" not in answer):
            problem = f"not a Connect camera message: {body[:300]!r}"
    if problem:
        die(f"check call for target {key} ({kind} on port {port}{path}) failed: {problem}")
    return message, (body.decode() if kind in ("json", "connect") else f"{len(body)} bytes")


# ---------------------------------------------------------------------------------------
# h2load


def parse_h2load(text):
    finished = re.search(r"finished in ([\d.]+)(us|ms|s),", text)
    requests = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (finished and requests and codes):
        return None
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[finished.group(2)]
    total, started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    c2, c3, c4, c5 = map(int, codes.groups())
    return {
        "seconds": float(finished.group(1)) * scale,
        "done": done, "succeeded": succeeded, "failed": failed, "errored": errored,
        "timeout": timeout, "non_2xx": c3 + c4 + c5,
    }


def run_round(args, target, setup, processes, work, label):
    """One h2load run against one target; calls/s and CPU µs per call of each process."""
    key, name, server, kind, path = target
    port = setup["ports"][server]
    # The processes serving this target, by role; nginx's workers are looked up again each
    # round in case one was replaced.
    roles = {"render server": [setup["pids"]["render"]]}
    if server == "nginx":
        master = setup["pids"]["nginx"]
        roles["proxy"] = [master] + children_of(master)
    elif server != "render":
        roles["proxy"] = [setup["pids"][server]]
    before = {role: [cpu_seconds(p) for p in pids] for role, pids in roles.items()}

    argv = [args.h2load, "-c", str(args.connections), "-m", str(args.streams),
            "-D", f"{int(round(setup['duration'][label] * 1000))}ms",
            "-d", os.path.join(work, f"request-{kind}")]
    for header in KINDS[kind]["headers"]:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out_file = os.path.join(work, f"h2load-{key}-{label}.txt")
    with open(out_file, "w") as out:
        h2load = processes.spawn("h2load", argv, stdout=out, stderr=subprocess.STDOUT)
        # Mid-round: how many connections the proxy holds to the render server under load
        # (at the end, the calls h2load leaves in flight close nginx's).
        upstream = None
        if "proxy" in roles:
            time.sleep(setup["duration"][label] / 2)
            upstream = upstream_connections(roles["proxy"], setup["ports"]["render"])
        _, wait_status, usage = os.wait4(h2load.pid, 0)
    h2load.returncode = os.waitstatus_to_exitcode(wait_status)
    processes.forget(h2load)
    after = {role: [cpu_seconds(p) for p in pids] for role, pids in roles.items()}

    with open(out_file, errors="replace") as f:
        text = f.read()
    result = parse_h2load(text)
    if result is None:
        die(f"target {key}: cannot read h2load's output (exit {h2load.returncode}):\n{text}")
    calls = result["succeeded"]
    result["exit"] = h2load.returncode
    result["rate"] = calls / result["seconds"] if result["seconds"] > 0 else 0.0
    result["cpu"] = {}
    result["notes"] = []
    per_call = 1e6 / calls if calls else float("nan")
    for role in roles:
        spent = 0.0
        for pid, b, a in zip(roles[role], before[role], after[role]):
            if b is None or a is None:
                result["notes"].append(f"{role} pid {pid} gone during the round")
            else:
                spent += a - b
        result["cpu"][role] = spent * per_call
    result["cpu"]["load generator"] = (usage.ru_utime + usage.ru_stime) * per_call
    result["failures"] = (result["failed"] + result["errored"] + result["timeout"]
                          + result["non_2xx"] + (1 if calls == 0 else 0)
                          + (1 if h2load.returncode != 0 else 0))
    result["raw"] = out_file
    result["upstream connections"] = upstream
    return result


def describe_failures(result):
    parts = [f"{result[k]} {k}" for k in ("failed", "errored", "timeout") if result[k]]
    if result["non_2xx"]:
        parts.append(f"{result['non_2xx']} non-2xx")
    if result["succeeded"] == 0:
        parts.append("no successful call")
    if result["exit"] != 0:
        parts.append(f"h2load exit {result['exit']}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(
        description="Unary GetCamera through the gateway, tonic-web and nginx, with h2load")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per target")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per round")
    parser.add_argument("--warmup-seconds", type=float, default=None,
                        help="seconds of the one warm-up round per target (default: --seconds)")
    parser.add_argument("--connections", type=int, default=8, help="h2load -c")
    parser.add_argument("--streams", type=int, default=8,
                        help="h2load -m (streams in flight per connection)")
    parser.add_argument("--targets", default="a,b,c,d,e,f,g",
                        help="comma-separated subset of a..g")
    parser.add_argument("--gateway-log", default="info",
                        help="RUST_LOG of the gateway (info: failed calls only, to /dev/null; 'info,octaneweb::call=debug' logs every call)")
    parser.add_argument("--nginx-keepalive", type=int, default=128,
                        help="nginx upstream `keepalive` (idle connections kept); 0: none")
    parser.add_argument("--bin-dir", default="target/release",
                        help="directory with octaneweb and tonic-web-proxy")
    parser.add_argument("--h2load", default=shutil.which("h2load") or "h2load")
    parser.add_argument("--nginx", default=shutil.which("nginx")
                        or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"))
    parser.add_argument("--curl", default=shutil.which("curl") or "curl")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep h2load outputs, nginx.conf and check answers in DIR")
    args = parser.parse_args()

    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    targets = [t for t in TARGETS if t[0] in wanted]
    unknown = set(wanted) - {t[0] for t in TARGETS}
    if unknown or not targets:
        die(f"unknown targets {sorted(unknown)}; choose from a..g")
    servers = {t[2] for t in targets} | {"render"}
    for tool in ([args.h2load, args.curl] + ([args.nginx] if "nginx" in servers else [])):
        if not shutil.which(tool) and not os.access(tool, os.X_OK):
            die(f"{tool} not found (benches/run-proxies installs it)")
    octaneweb = os.path.join(args.bin_dir, "octaneweb")
    tonic_web_proxy = os.path.join(args.bin_dir, "tonic-web-proxy")

    processes = Processes()

    def on_signal(signum, _frame):
        raise SystemExit(f"run-proxies: stopped by signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)

    work = args.keep or tempfile.mkdtemp(prefix="octaneweb-proxies-")
    os.makedirs(work, exist_ok=True)
    try:
        run(args, targets, servers, processes, work, octaneweb, tonic_web_proxy)
    finally:
        processes.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args, targets, servers, processes, work, octaneweb, tonic_web_proxy):
    for kind, spec in KINDS.items():
        with open(os.path.join(work, f"request-{kind}"), "wb") as f:
            f.write(spec["body"])
    ports, pids = {}, {}
    env = dict(os.environ)

    ports["render"] = free_port()
    render_log = os.path.join(work, "render-server.log")
    render = processes.spawn(
        "render server",
        [octaneweb, "render-server", "--listen", f"127.0.0.1:{ports['render']}",
         "--width", "64", "--height", "32", "--max-spp", "1"],
        env={**env, "RUST_LOG": "warn"}, stdout=subprocess.DEVNULL,
        stderr=open(render_log, "w"))
    wait_listening(ports["render"], render, "octaneweb render-server", render_log)
    pids["render"] = render.pid

    if "gateway" in servers:
        ports["gateway"] = free_port()
        gateway = processes.spawn(
            "gateway",
            [octaneweb, "serve", "--listen", f"127.0.0.1:{ports['gateway']}",
             "--upstream", f"127.0.0.1:{ports['render']}"],
            env={**env, "RUST_LOG": args.gateway_log},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(ports["gateway"], gateway, "octaneweb serve")
        pids["gateway"] = gateway.pid

    if "tonicweb" in servers:
        proxy = processes.spawn(
            "tonic-web proxy",
            [tonic_web_proxy, "--listen", "127.0.0.1:0",
             "--upstream", f"127.0.0.1:{ports['render']}"],
            env={**env, "RUST_LOG": "warn"}, stdout=subprocess.PIPE, text=True)
        line = proxy.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            die(f"tonic-web-proxy did not start: {line!r} (exit {proxy.poll()})")
        ports["tonicweb"] = int(match.group(1))
        pids["tonicweb"] = proxy.pid

    nginx_banner = None
    if "nginx" in servers:
        version = nginx_version(args.nginx)
        nginx_banner = "nginx " + ".".join(map(str, version))
        ports["nginx"] = free_port()
        config = os.path.join(work, "nginx.conf")
        with open(config, "w") as f:
            f.write(nginx_config(work, ports["nginx"], ports["render"], version,
                                 args.nginx_keepalive))
        error_log = os.path.join(work, "error.log")
        nginx = processes.spawn(
            "nginx", [args.nginx, "-p", work, "-c", config, "-e", error_log],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "nginx.stderr"), "w"))
        wait_listening(ports["nginx"], nginx, "nginx", error_log)
        pids["nginx"] = nginx.pid
        for worker in children_of(nginx.pid):
            processes.extra_pids.append(("nginx worker", worker, process_start_time(worker)))

    # One check call per target: the answer must be a real success, and the gRPC and
    # gRPC-Web ones must carry the same message bytes as the render server's own answer.
    log("check calls:")
    checked = ([] if targets[0][0] == "a" else [TARGETS[0]]) + targets
    messages = {}
    for key, name, server, kind, path in checked:
        messages[key], shown = check_call(args.curl, key, ports[server], kind, path, work)
        if messages[key] is not None and messages[key] != messages["a"]:
            die(f"target {key} answered another message than the render server")
        log(f"  {key} {name}: ok ({shown})")

    h2load_version = subprocess.run([args.h2load, "--version"], capture_output=True,
                                    text=True).stdout.strip()
    warmup = args.warmup_seconds if args.warmup_seconds is not None else args.seconds
    setup = {"ports": ports, "pids": pids,
             "duration": {"warm-up": warmup, **{f"round {i + 1}": args.seconds
                                                 for i in range(args.rounds)}}}

    # Warm-up of every target, then the measured rounds interleaved (round 1 of every
    # target, then round 2, ...) so that a change in the machine's background load spreads
    # over all targets instead of skewing one.
    results = {t[0]: [] for t in targets}
    warmups = {}
    for target in targets:
        r = run_round(args, target, setup, processes, work, "warm-up")
        warmups[target[0]] = r
        log(f"warm-up {target[0]}: {r['rate']:.0f} calls/s"
            + (f"  FAILURES: {describe_failures(r)}" if r["failures"] else ""))
    for i in range(args.rounds):
        for target in targets:
            r = run_round(args, target, setup, processes, work, f"round {i + 1}")
            results[target[0]].append(r)
            cpu = "  ".join(f"{role} {us:.1f}" for role, us in r["cpu"].items())
            log(f"round {i + 1} {target[0]}: {r['rate']:.0f} calls/s, µs/call: {cpu}"
                + (f"  FAILURES: {describe_failures(r)}" if r["failures"] else "")
                + (f"  ({'; '.join(r['notes'])})" if r["notes"] else ""))

    report(args, targets, results, warmups, nginx_banner, h2load_version)
    failed = [k for k, rs in results.items() if any(r["failures"] for r in rs)]
    failed += [k for k, r in warmups.items() if r["failures"] and k not in failed]
    if failed:
        log(f"run-proxies: failures in target(s) {', '.join(sorted(failed))}; "
            "see the table (exit status 2)")
        raise SystemExit(2)


def median(values):
    values = [v for v in values if v == v]  # without NaN (rounds with no successful call)
    return statistics.median(values) if values else float("nan")


def report(args, targets, results, warmups, nginx_banner, h2load_version):
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Run of {now}, commit {commit}{' (with uncommitted changes)' if dirty else ''}, "
          f"{os.cpu_count()} cores, load average {load[0]:.2f} at the end; "
          f"{h2load_version.splitlines()[0] if h2load_version else 'h2load'}"
          f"{', ' + nginx_banner if nginx_banner else ''}.")
    print(f"h2load -c{args.connections} -m{args.streams} "
          f"({args.connections * args.streams} calls in flight), 1 warm-up + {args.rounds} "
          f"rounds of {args.seconds:g} s per target, medians.")
    print()
    print("| target | calls/s | CPU µs/call: render server | proxy | load generator | total "
          "| failures |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    for key, name, server, kind, path in targets:
        rounds = results[key]
        m = {"rate": median([r["rate"] for r in rounds])}
        for role in ("render server", "proxy", "load generator"):
            values = [r["cpu"][role] for r in rounds if role in r["cpu"]]
            m[role] = median(values) if values else None
        m["total"] = sum(v for k, v in m.items() if k != "rate" and v is not None)
        medians[key] = m
        bad = [(i + 1, r) for i, r in enumerate(rounds) if r["failures"]]
        failures = "0"
        if bad:
            failures = "; ".join(f"round {i}: {describe_failures(r)}" for i, r in bad)
        if warmups[key]["failures"]:
            failures += f" (warm-up: {describe_failures(warmups[key])})"
        proxy = "–" if m["proxy"] is None else f"{m['proxy']:.1f}"
        print(f"| {key}. {name} | {m['rate']:,.0f} | {m['render server']:.1f} | {proxy} | "
              f"{m['load generator']:.1f} | {m['total']:.1f} | {failures} |")
    print()
    held = [(key, results[key][-1]["upstream connections"]) for key, *_ in targets
            if results[key][-1]["upstream connections"] is not None]
    if held:
        print("Connections the proxy held to the render server in the middle of its last round: "
              + ", ".join(f"{key} {count}" for key, count in held) + ".")
        print()

    def ratio(a, b):
        return "n/a" if not a or not b or a != a or b != b else f"{a / b:.2f}"

    def have(*keys):
        return all(k in medians for k in keys)

    lines = []
    if have("a"):
        hops = [(k, label) for k, label in (("b", "gateway pass-through"),
                                             ("e", "gateway gRPC-Web"),
                                             ("f", "tonic-web proxy"),
                                             ("g", "nginx grpc_pass")) if k in medians]
        if hops:
            lines.append(
                "- proxy CPU per call ÷ render server CPU per direct call "
                f"({medians['a']['render server']:.1f} µs): " + ", ".join(
                    f"{label} {ratio(medians[k]['proxy'], medians['a']['render server'])}"
                    f" ({medians[k]['proxy']:.1f} µs)" for k, label in hops))
    if have("b", "c"):
        lines.append(
            f"- JSON route ÷ pass-through: gateway CPU per call "
            f"{ratio(medians['c']['proxy'], medians['b']['proxy'])}, calls/s "
            f"{ratio(medians['c']['rate'], medians['b']['rate'])}")
    if have("b", "d"):
        lines.append(
            f"- Connect JSON ÷ pass-through: gateway CPU per call "
            f"{ratio(medians['d']['proxy'], medians['b']['proxy'])}, calls/s "
            f"{ratio(medians['d']['rate'], medians['b']['rate'])}")
    if have("e", "f"):
        lines.append(
            f"- gateway gRPC-Web ÷ tonic-web proxy: calls/s "
            f"{ratio(medians['e']['rate'], medians['f']['rate'])}, proxy CPU per call "
            f"{ratio(medians['e']['proxy'], medians['f']['proxy'])}")
    if have("b", "g"):
        lines.append(
            f"- gateway pass-through ÷ nginx grpc_pass: calls/s "
            f"{ratio(medians['b']['rate'], medians['g']['rate'])}, proxy CPU per call "
            f"{ratio(medians['b']['proxy'], medians['g']['proxy'])}")
    if have("a", "b"):
        lines.append(
            f"- gateway pass-through ÷ direct: calls/s "
            f"{ratio(medians['b']['rate'], medians['a']['rate'])}")
    if lines:
        print("Ratios (of the medians):")
        print()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
