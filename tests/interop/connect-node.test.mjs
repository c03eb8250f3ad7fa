// @connectrpc/connect-node (v2) against the real gateway, with every transport it has:
// Connect (JSON and binary), gRPC-Web, and gRPC over HTTP/2. Message types come from our
// protos, built with the buf CLI and loaded into a @bufbuild/protobuf registry at run time.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, createClient } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { CAMERA_A, CAMERA_B, LIVELINK, MISSING_PROTO_ROOT, OCTANE_PROTO_ROOT, pushable, registryFor, service, startDemo, waitFor } from './common.mjs';
import { BAD_HANDLE, badHandle, callbackStream, cameraRoundTrip, failureOf, makeClients, makeMissingClients, sceneWalk, streamDeadline } from './scenarios.mjs';
import { callJson } from '../browser/harness.mjs';

const registry = registryFor(OCTANE_PROTO_ROOT);
const missingRegistry = registryFor(MISSING_PROTO_ROOT);

let demo;
before(async () => {
  demo = await startDemo();
});
after(async () => {
  await demo?.stop();
});

/** The transports under test, each made fresh against the running gateway. */
/** The transports under test, each made fresh against the running gateway; `protocol` is its label in /metrics. */
const TRANSPORTS = [
  // connect-node defaults to the binary format; JSON is asked for explicitly.
  { name: 'Connect JSON (HTTP/1.1)', protocol: 'connect', make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false }) },
  { name: 'Connect binary (HTTP/2)', protocol: 'connect', make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true }) },
  { name: 'gRPC-Web binary (HTTP/1.1)', protocol: 'grpc-web', make: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true }) },
  { name: 'gRPC-Web binary (HTTP/2)', protocol: 'grpc-web', make: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true }) },
  { name: 'gRPC (HTTP/2)', protocol: 'grpc', make: (baseUrl) => createGrpcTransport({ baseUrl, httpVersion: '2' }) },
];

/** The gateway's `octaneweb_calls_in_flight` for `protocol`, read from /metrics. */
async function callsInFlight(protocol) {
  const text = await (await fetch(new URL('metrics', demo.url))).text();
  const line = text.split('\n').find((l) => l.startsWith(`octaneweb_calls_in_flight{protocol="${protocol}"}`));
  assert.ok(line, `no calls_in_flight metric for ${protocol}`);
  return Number(line.split(' ').pop());
}

/** Waits (5 s at most) until the gateway has no `protocol` call in flight. */
async function noCallsInFlight(protocol, what) {
  const started = Date.now();
  while ((await callsInFlight(protocol)) !== 0) {
    assert.ok(Date.now() - started < 5000, `${protocol} call still in flight 5 s after ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

TRANSPORTS.forEach(({ name, protocol, make }, index) => {
  describe(name, () => {
    let clients;
    let missing;
    before(() => {
      const transport = make(demo.url.replace(/\/$/, ''));
      clients = makeClients(registry, transport);
      missing = makeMissingClients(missingRegistry, transport);
    });

    test('unary: SetCamera then GetCamera reads the same camera back', async () => {
      const camera = index % 2 === 0 ? CAMERA_A : CAMERA_B;
      const result = await cameraRoundTrip(clients, camera);
      assert.deepEqual(result.position, camera.position);
      // The original JSON route sees the same camera: both reached the same render server.
      const viaJson = await callJson(demo.url, 'LiveLink', 'GetCamera');
      assert.equal(viaJson.fov, result.fov);
    });

    test('unary: a scene walk over ApiItem calls matches the JSON route', async () => {
      const items = await sceneWalk(clients);
      assert.ok(items.length >= 1);
      const root = await callJson(demo.url, 'ApiProjectManager', 'rootNodeGraph');
      const list = (await callJson(demo.url, 'ApiNodeGraph', 'getOwnedItems', { objectPtr: root.result })).list;
      for (const [i, item] of items.entries()) {
        const viaJson = await callJson(demo.url, 'ApiItemArray', 'get', { objectPtr: list, index: i });
        assert.equal(viaJson.result.handle, item.handle, `item ${i} handle`);
        const nameViaJson = await callJson(demo.url, 'ApiItem', 'name', { objectPtr: viaJson.result });
        assert.equal(nameViaJson.result, item.name, `item ${i} name`);
      }
    });

    test('server stream: callbackChannel notifications, then grabbed images with growing samples', async () => {
      const seen = await callbackStream(clients, { userData: 7100 + index, minImages: 3 });
      assert.ok(seen.newImages >= 3);
      assert.deepEqual(seen.sizes[0], [256, 128], 'the demo renders 256x128');
    });

    test('cancel: a stream the client leaves is released by the gateway', async () => {
      await noCallsInFlight(protocol, 'the earlier tests');
      const abort = new AbortController();
      const stream = clients.callbacks.callbackChannel({}, { signal: abort.signal })[Symbol.asyncIterator]();
      await stream.next();
      assert.equal(await callsInFlight(protocol), 1, 'the open stream is in flight');
      abort.abort();
      await stream.return?.().catch(() => {});
      // The gateway notices the client went away and ends its side (and the upstream call).
      await noCallsInFlight(protocol, 'the client cancelled');
    });

    test('error: a bad handle gets the server status NOT_FOUND with its message', async () => {
      const failure = await badHandle(clients);
      assert.equal(failure.code, Code.NotFound, `${failure.codeName}: ${failure.message}`);
      assert.match(failure.message, new RegExp(`no object with handle ${BAD_HANDLE}`));
    });

    test('error: an unknown method and an unknown service fail with UNIMPLEMENTED or NOT_FOUND', async () => {
      for (const call of [() => missing.unknownMethod.noSuchMethod({}), () => missing.unknownService.missing({})]) {
        const failure = await failureOf(call);
        assert.ok([Code.Unimplemented, Code.NotFound].includes(failure.code), `got ${failure.codeName}: ${failure.message}`);
      }
    });

    test('deadline: a server stream past its timeout ends with DEADLINE_EXCEEDED', async () => {
      const failure = await streamDeadline(clients, 500);
      assert.equal(failure.code, Code.DeadlineExceeded, `${failure.codeName}: ${failure.message}`);
    });

    test("deadline from the protocol's own timeout header alone: the server ends the stream", async () => {
      // No client-side timeout: only the server can end this stream.
      const header = name.startsWith('Connect') ? { 'connect-timeout-ms': '300' } : { 'grpc-timeout': '300m' };
      const started = Date.now();
      let messages = 0;
      const failure = await failureOf(async () => {
        for await (const _ of clients.callbacks.callbackChannel({}, { headers: header })) messages += 1;
      });
      assert.equal(failure.code, Code.DeadlineExceeded, `${failure.codeName}: ${failure.message}`);
      assert.ok(messages >= 1, 'notifications arrived before the deadline');
      assert.ok(Date.now() - started < 5000, `ended after ${Date.now() - started} ms`);
    });
  });
});

describe('compression and GET', () => {
  // Each transport sends every request gzip-compressed (compressMinBytes 0) and accepts only
  // gzip back; `encodings` records the response header naming the encoding of each call.
  const gzip = (baseUrl, encodings) => ({
    baseUrl,
    sendCompression: compressionGzip,
    acceptCompression: [compressionGzip],
    compressMinBytes: 0,
    interceptors: [
      (next) => async (request) => {
        const response = await next(request);
        encodings.set(request.method.name, response.header.get('connect-content-encoding') ?? response.header.get('grpc-encoding'));
        return response;
      },
    ],
  });
  const GZIP_TRANSPORTS = [
    ['Connect binary, gzip', (baseUrl, encodings) => createConnectTransport({ ...gzip(baseUrl, encodings), httpVersion: '1.1', useBinaryFormat: true })],
    ['Connect JSON, gzip', (baseUrl, encodings) => createConnectTransport({ ...gzip(baseUrl, encodings), httpVersion: '1.1', useBinaryFormat: false })],
    ['gRPC-Web, gzip', (baseUrl, encodings) => createGrpcWebTransport({ ...gzip(baseUrl, encodings), httpVersion: '1.1', useBinaryFormat: true })],
    ['gRPC, gzip', (baseUrl, encodings) => createGrpcTransport({ ...gzip(baseUrl, encodings), httpVersion: '2' })],
  ];
  for (const [name, make] of GZIP_TRANSPORTS) {
    test(`${name}: compressed requests and a compressed server stream`, async () => {
      const encodings = new Map();
      const clients = makeClients(registry, make(demo.url.replace(/\/$/, ''), encodings));
      await cameraRoundTrip(clients, CAMERA_B);
      const seen = await callbackStream(clients, { userData: 7200, minImages: 2 });
      assert.ok(seen.spp.length >= 2);
      assert.equal(encodings.get('callbackChannel'), 'gzip', 'the stream came back gzip-compressed');
      const meshes = await clients.livelink.getMeshes({});
      assert.ok(meshes.meshes.length >= 1, 'GetMeshes lists the scene meshes');
    });
  }

  test('Connect GET for a method marked free of side effects', async () => {
    // The transport turns POST into GET below the interceptors, so the HTTP method is seen
    // where the request leaves: an http.Agent that records each request.
    const methods = [];
    class RecordingAgent extends http.Agent {
      addRequest(request, options) {
        methods.push(`${request.method} ${request.path.split('?')[0]}`);
        return super.addRequest(request, options);
      }
    }
    const agent = new RecordingAgent();
    const transport = createConnectTransport({ baseUrl: demo.url.replace(/\/$/, ''), httpVersion: '1.1', useBinaryFormat: false, useHttpGet: true, nodeOptions: { agent } });
    const livelink = createClient(service(registry, LIVELINK), transport);
    const method = service(registry, LIVELINK).methods.find((m) => m.name === 'GetCamera');
    // useHttpGet only applies to methods whose schema says NO_SIDE_EFFECTS.
    assert.equal(method.idempotency, 1, 'GetCamera is marked idempotency_level = NO_SIDE_EFFECTS in proto/octane');
    await livelink.setCamera({ fovSet: { case: 'fov', value: 33.5 } });
    const camera = await livelink.getCamera({});
    assert.equal(camera.fovSet.value, 33.5);
    assert.deepEqual(methods, ['POST /livelinkapi.LiveLinkService/SetCamera', 'GET /livelinkapi.LiveLinkService/GetCamera']);
    agent.destroy();
  });
});

describe('client and bidirectional streams over Connect and gRPC-Web', () => {
  // Every transport that can stream requests over HTTP/2; connect-node's JSON and binary
  // Connect, its gRPC-Web, and gRPC for comparison.
  const DUPLEX_TRANSPORTS = [
    ['Connect binary (HTTP/2)', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
    ['Connect JSON (HTTP/2)', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: false })],
    ['gRPC-Web binary (HTTP/2)', (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
    ['gRPC (HTTP/2)', (baseUrl) => createGrpcTransport({ baseUrl, httpVersion: '2' })],
  ];

  /** The gateway's whole schema (reflection services included), from GET /schema.binpb. */
  let liveRegistry;
  before(async () => {
    const response = await fetch(new URL('schema.binpb', demo.url));
    assert.equal(response.status, 200, 'GET /schema.binpb');
    liveRegistry = createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer())));
  });

  for (const [name, make] of DUPLEX_TRANSPORTS) {
    test(`${name}: a client stream (StreamCamera) reaches the render server`, async () => {
      const clients = makeClients(registry, make(demo.url.replace(/\/$/, '')));
      async function* states() {
        for (const fov of [31, 32, 33.5]) yield { fovSet: { case: 'fov', value: fov } };
      }
      const status = await clients.livelink.streamCamera(states());
      assert.ok(status.message.length > 0, 'a StreamStatus message');
      assert.equal((await clients.livelink.getCamera({})).fovSet.value, 33.5, 'the last state applies');
    });

    test(`${name}: bidi reflection takes turns with the request stream open`, async () => {
      const reflection = createClient(service(liveRegistry, 'grpc.reflection.v1.ServerReflection'), make(demo.url.replace(/\/$/, '')));
      const requests = pushable();
      requests.push({ messageRequest: { case: 'listServices', value: '' } });
      const answers = reflection.serverReflectionInfo(requests)[Symbol.asyncIterator]();
      // Each answer is read before the next request is sent and before the stream closes:
      // a gateway that waited for the whole request would never answer.
      const first = await answers.next();
      assert.equal(first.value.messageResponse.case, 'listServicesResponse');
      const names = first.value.messageResponse.value.service.map((s) => s.name);
      assert.ok(names.includes(LIVELINK), names.join(', '));
      requests.push({ messageRequest: { case: 'fileContainingSymbol', value: LIVELINK } });
      const second = await answers.next();
      assert.equal(second.value.messageResponse.case, 'fileDescriptorResponse');
      assert.ok(second.value.messageResponse.value.fileDescriptorProto.length >= 1);
      requests.end();
      assert.equal((await answers.next()).done, true, 'the call ends when the requests do');
    });
  }

  for (const [name, make] of DUPLEX_TRANSPORTS.filter(([n]) => !n.includes('JSON'))) {
    test(`${name}: a client stream cancelled mid-call releases its upstream stream`, async () => {
      const clients = makeClients(registry, make(demo.url.replace(/\/$/, '')));
      // The frame hub's lasting call holds upstream streams of its own: count from here.
      const baseline = await upstreamStreams();
      const abort = new AbortController();
      const states = pushable();
      states.push({ fovSet: { case: 'fov', value: 44 } });
      const call = failureOf(() => clients.livelink.streamCamera(states, { signal: abort.signal }));
      await waitFor(async () => (await upstreamStreams()) === baseline + 1, 'the upstream stream to open');
      abort.abort();
      const failure = await call;
      assert.equal(failure.code, Code.Canceled, `${failure.codeName}: ${failure.message}`);
      await waitFor(async () => (await upstreamStreams()) === baseline, 'the upstream stream to be released');
    });
  }

  const HTTP1_TRANSPORTS = [
    ['Connect binary (HTTP/1.1)', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true })],
    ['gRPC-Web binary (HTTP/1.1)', (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true })],
  ];
  for (const [name, make] of HTTP1_TRANSPORTS) {
    test(`${name}: bidi is refused at once, naming HTTP/2 and /ws`, async () => {
      const reflection = createClient(service(liveRegistry, 'grpc.reflection.v1.ServerReflection'), make(demo.url.replace(/\/$/, '')));
      // The request stream never ends, as a bidi client's does while it waits for answers.
      const requests = pushable();
      requests.push({ messageRequest: { case: 'listServices', value: '' } });
      const started = Date.now();
      const failure = await failureOf(async () => {
        for await (const _ of reflection.serverReflectionInfo(requests));
      });
      assert.ok(Date.now() - started < 2000, `refused after ${Date.now() - started} ms`);
      assert.equal(failure.code, Code.InvalidArgument, `${failure.codeName}: ${failure.message}`);
      assert.match(failure.message, /ServerReflectionInfo is a bidirectional-streaming method; .* over HTTP\/1\.1 cannot carry it, use HTTP\/2 .* or the WebSocket \/ws/);
    });

    test(`${name}: a client stream streams its body`, async () => {
      const clients = makeClients(registry, make(demo.url.replace(/\/$/, '')));
      async function* states() {
        for (const fov of [35, 36.5]) yield { fovSet: { case: 'fov', value: fov } };
      }
      const status = await clients.livelink.streamCamera(states());
      assert.ok(status.message.length > 0, 'a StreamStatus message');
      assert.equal((await clients.livelink.getCamera({})).fovSet.value, 36.5);
    });
  }
});

/** The gateway's `octaneweb_upstream_streams` (its pool's upstream streams in flight). */
async function upstreamStreams() {
  const text = await (await fetch(new URL('metrics', demo.url))).text();
  const line = text.split('\n').find((l) => l.startsWith('octaneweb_upstream_streams '));
  assert.ok(line, 'no octaneweb_upstream_streams in /metrics');
  return Number(line.split(' ').pop());
}
