// Python grpcio (PyPI) through the gateway's gRPC pass-through: all four RPC kinds, a deadline,
// status codes and metadata. The Python side (python/grpcio_interop.py) generates its stubs
// from proto/octane with grpcio-tools at run time and reports one JSON line per check; each
// check is one test here.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { OCTANE_PROTO_ROOT, here, hostPort, runPythonChecks, startDemo } from './common.mjs';

const SCRIPT = path.join(here, 'python', 'grpcio_interop.py');
const RUN_TIMEOUT_MS = 120000;

let demo;
let run;
before(async () => {
  demo = await startDemo();
  // `demo` prints where its embedded render server listens: the same calls go there directly.
  const upstream = demo.output().match(/render server on (127\.0\.0\.1:\d+)/);
  assert.ok(upstream, `demo did not print its render server address:\n${demo.output()}`);
  run = await runPythonChecks('grpcio', [SCRIPT, hostPort(demo.url), OCTANE_PROTO_ROOT, upstream[1]], RUN_TIMEOUT_MS);
});
after(async () => {
  await demo?.stop();
});

/** Asserts that the Python check `name` ran and passed. */
function passed(name) {
  const result = run.results.get(name);
  assert.ok(result, `check ${name} did not report (exit ${run.exitCode}):\n${run.stderr}`);
  assert.ok(result.ok, `check ${name} failed:\n${result.detail}`);
}

test('grpcio-tools generates stubs from proto/octane', () => passed('generate_stubs'));
test('unary: SetCamera then GetCamera (and with_call status)', () => passed('unary'));
test('server streaming: callbackChannel with growing grabbed samples, then client cancel (released by the gateway)', () => passed('server_streaming'));
test('client streaming: StreamCamera applies every state and answers once', () => passed('client_streaming'));
test('bidi streaming: ServerReflectionInfo over v1alpha (grpcio-reflection stubs) and v1', () => passed('bidi_streaming'));
test('deadline: a stream past its timeout ends with DEADLINE_EXCEEDED', () => passed('deadline'));
test('status codes: NOT_FOUND with the server message, UNIMPLEMENTED for an unknown method', () => passed('status_codes'));
test('metadata: custom text and binary request metadata pass', () => passed('metadata'));
test('grpc.aio: interleaved bidi (each answer before the next request), stream cancel, channel reuse', () => passed('aio'));
test('a service absent from the gateway schema (grpc.health.v1 Check, Watch) passes through', () => passed('absent_from_schema'));
test('the same calls straight to the render server look the same (codes, messages, metadata: nothing lost or added)', () => passed('same_as_upstream'));
test('the Python run exits 0', () => assert.equal(run.exitCode, 0, run.stderr));
