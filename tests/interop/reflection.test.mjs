// The gateway's own reflection service and schema export, used by clients no one here wrote,
// with no .proto file: Python grpcio-reflection (python/reflection_interop.py, one JSON line
// per check) and the npm grpc-js-reflection-client over @grpc/grpc-js list the services,
// resolve a LiveLink method by reflection and call it through the gateway's port with a
// message built from the reflected descriptor; @bufbuild/protobuf reads GET /schema.binpb.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { GrpcReflection } from 'grpc-js-reflection-client';
import { LIVELINK, here, hostPort, runPythonChecks, startDemo } from './common.mjs';

const SCRIPT = path.join(here, 'python', 'reflection_interop.py');
const RUN_TIMEOUT_MS = 60000;
const CALL_TIMEOUT_MS = 10000;

let demo;
let python;
before(async () => {
  demo = await startDemo();
  python = await runPythonChecks('grpcio-reflection', [SCRIPT, hostPort(demo.url)], RUN_TIMEOUT_MS);
});
after(async () => {
  await demo?.stop();
});

/** Asserts that the Python check `name` ran and passed. */
function passed(name) {
  const result = python.results.get(name);
  assert.ok(result, `check ${name} did not report (exit ${python.exitCode}):\n${python.stderr}`);
  assert.ok(result.ok, `check ${name} failed:\n${result.detail}`);
}

test('grpcio-reflection lists the services (v1alpha), the reflection services among them', () => passed('list_services'));
test('grpcio-reflection: the same list over grpc.reflection.v1', () => passed('list_services_v1'));
test('grpcio-reflection resolves LiveLink SetCamera/GetCamera, the file with its comments', () => passed('resolve_method'));
test('grpcio: SetCamera then GetCamera with messages built from the reflected descriptors', () => passed('call_by_reflection'));
test('the Python run exits 0', () => assert.equal(python.exitCode, 0, python.stderr));

/** A unary call through a grpc-js client, as a promise. */
function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + CALL_TIMEOUT_MS);
    client[method](request, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

for (const version of ['v1', 'v1alpha']) {
  test(`grpc-js-reflection-client (${version}): list, resolve LiveLink and call it with no .proto`, async () => {
    const target = hostPort(demo.url);
    const reflection = new GrpcReflection(target, grpc.credentials.createInsecure(), {}, version);
    const services = await reflection.listServices();
    for (const name of [LIVELINK, 'octaneapi.ApiItemService', `grpc.reflection.${version}.ServerReflection`]) {
      assert.ok(services.includes(name), `${name} not in ${services}`);
    }
    const methods = (await reflection.listMethods(LIVELINK)).map((m) => m.name);
    assert.ok(methods.includes('SetCamera') && methods.includes('GetCamera'), `${methods}`);

    const descriptor = await reflection.getDescriptorBySymbol(LIVELINK);
    const root = descriptor.getPackageObject({ keepCase: true, defaults: false, oneofs: true });
    const LiveLink = root.livelinkapi.LiveLinkService;
    assert.equal(typeof LiveLink, 'function', 'a client constructor from the reflected descriptor');
    const client = new LiveLink(target, grpc.credentials.createInsecure());
    try {
      // Exactly representable as float32, so the read-back compares with ===; each version
      // sets its own values so one run cannot pass on the other's.
      const fov = version === 'v1' ? 33.5 : 61.25;
      const position = { x: -2.5, y: 4.75, z: version === 'v1' ? 1.5 : -8.0 };
      await unary(client, 'SetCamera', { position, fov });
      const camera = await unary(client, 'GetCamera', {});
      assert.deepEqual(camera.position, position);
      assert.equal(camera.fov, fov);
    } finally {
      client.close();
    }
  });
}

test('GET /schema.binpb is a FileDescriptorSet @bufbuild/protobuf reads, comments included', async () => {
  const response = await fetch(new URL('/schema.binpb', demo.url));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'application/x-protobuf');
  assert.equal(response.headers.get('content-disposition'), 'attachment; filename="schema.binpb"');
  const set = fromBinary(FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer()));
  // createFileRegistry needs every file after its imports.
  const registry = createFileRegistry(set);
  for (const name of [LIVELINK, 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']) {
    assert.ok(registry.getService(name), `${name} missing from /schema.binpb`);
  }
  const livelink = set.file.find((file) => file.name === 'livelink.proto');
  assert.ok(livelink, 'livelink.proto');
  const comments = livelink.sourceCodeInfo?.location.map((l) => l.leadingComments ?? '') ?? [];
  assert.ok(comments.some((c) => c.includes('Getters are marked NO_SIDE_EFFECTS')), 'service comment kept');
});
