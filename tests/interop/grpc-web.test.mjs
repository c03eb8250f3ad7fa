// The grpc-web npm package (Google's gRPC-Web client: GrpcWebClientBase + MethodDescriptor)
// against the real gateway, in text (application/grpc-web-text) and binary
// (application/grpc-web+proto) modes. Node has no XMLHttpRequest, so the xhr2 package stands in
// for the browser's. Message classes wrap @bufbuild/protobuf over the registry built from our
// protos at run time (grpc-web-glue.mjs).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import XMLHttpRequestPolyfill from 'xhr2';
import { CAMERA_A, CAMERA_B, ITEM, OCTANE_PROTO_ROOT, registryFor, startDemo } from './common.mjs';
import { StatusCode, grpcWebCallbacks, grpcWebCamera, grpcWebCaller, grpcWebFailure } from './grpc-web-glue.mjs';

globalThis.XMLHttpRequest ??= XMLHttpRequestPolyfill;

const registry = registryFor(OCTANE_PROTO_ROOT);

let demo;
before(async () => {
  demo = await startDemo();
});
after(async () => {
  await demo?.stop();
});

for (const format of ['text', 'binary']) {
  describe(`grpc-web, format '${format}'`, () => {
    const caller = () => grpcWebCaller(registry, demo.url, format);

    test('unary: SetCamera then GetCamera reads the same camera back', async () => {
      const camera = format === 'text' ? CAMERA_A : CAMERA_B;
      const read = await grpcWebCamera(caller(), camera);
      assert.deepEqual(read.position, camera.position);
      assert.equal(read.fov, camera.fov);
    });

    test('unary: a bad handle fails with NOT_FOUND and the server message', async () => {
      const failure = await grpcWebFailure(() => caller().unary(ITEM, 'name', { objectPtr: { handle: 987654321n, type: 16 } }));
      assert.equal(failure.code, StatusCode.NOT_FOUND, `code ${failure.code}: ${failure.message}`);
      assert.match(failure.message, /no object with handle 987654321/);
    });

    test('unary: an unknown method and an unknown service fail with UNIMPLEMENTED or NOT_FOUND', async () => {
      for (const path of ['/livelinkapi.LiveLinkService/NoSuchMethod', '/octaneweb.interop.NoSuchService/Missing']) {
        const failure = await grpcWebFailure(() => caller().unaryMissing(path));
        assert.ok([StatusCode.UNIMPLEMENTED, StatusCode.NOT_FOUND].includes(failure.code), `${path}: code ${failure.code}: ${failure.message}`);
      }
    });

    test('server streaming: callbackChannel notifications, then grabbed samples grow', async () => {
      const seen = await grpcWebCallbacks(caller(), format === 'text' ? 8101 : 8102);
      assert.ok(seen.newImages >= 3);
      assert.deepEqual(seen.size, [256, 128], 'the demo renders 256x128');
      assert.ok(seen.spp[1] > seen.spp[0]);
    });
  });
}
