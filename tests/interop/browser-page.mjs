// The page of browser.test.mjs, bundled by esbuild at test time: @connectrpc/connect-web
// (Connect JSON, Connect binary and gRPC-Web transports) and Google's grpc-web, over the browser's own fetch
// and XMLHttpRequest, with message types from descriptor sets the test's static server hands
// out (built from our protos by buf). `window.interop.run(name, gatewayUrl)` runs one
// scenario and resolves to a JSON-safe summary; failures reject with the reason.

import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import { badHandle, callbackStream, cameraRoundTrip, failureOf, makeClients, makeMissingClients, sceneWalk } from './scenarios.mjs';
import { grpcWebCallbacks, grpcWebCamera, grpcWebCaller, grpcWebFailure } from './grpc-web-glue.mjs';

async function loadRegistry(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer())));
}

const registries = Promise.all([loadRegistry('/octane.binpb'), loadRegistry('/missing.binpb')]);

const CAMERA = { position: { x: 3.5, y: 1.75, z: -6.25 }, target: { x: 0.25, y: 0.5, z: 0 }, fov: 47.5 };

/** Scenarios for a Connect transport; every result is made JSON-safe. */
async function connectScenario(name, transport) {
  const [registry, missingRegistry] = await registries;
  const clients = makeClients(registry, transport);
  switch (name) {
    case 'camera':
      return cameraRoundTrip(clients, CAMERA);
    case 'scene':
      return sceneWalk(clients);
    case 'stream': {
      const seen = await callbackStream(clients, { userData: 6100, minImages: 3 });
      return { newImages: seen.newImages, spp: seen.spp, size: seen.sizes[0] };
    }
    case 'badHandle':
      return badHandle(clients);
    case 'getCameraFails':
      return failureOf(() => clients.livelink.getCamera({}));
    case 'unknown': {
      const missing = makeMissingClients(missingRegistry, transport);
      return [await failureOf(() => missing.unknownMethod.noSuchMethod({})), await failureOf(() => missing.unknownService.missing({}))];
    }
    default:
      throw new Error(`no scenario ${name}`);
  }
}

async function grpcWebScenario(name, gatewayUrl, format) {
  const [registry] = await registries;
  const caller = grpcWebCaller(registry, gatewayUrl, format);
  switch (name) {
    case 'camera':
      return grpcWebCamera(caller, CAMERA);
    case 'stream':
      return grpcWebCallbacks(caller, 6200);
    case 'badHandle':
      return grpcWebFailure(() => caller.unary('octaneapi.ApiItemService', 'name', { objectPtr: { handle: 987654321n, type: 16 } }));
    case 'getCameraFails':
      return grpcWebFailure(() => caller.unary('livelinkapi.LiveLinkService', 'GetCamera'));
    default:
      throw new Error(`no scenario ${name}`);
  }
}

window.interop = {
  /** `client`: 'connect-json', 'connect-binary', 'connect-grpc-web', 'grpc-web-text', 'grpc-web-binary'. */
  async run(client, name, gatewayUrl) {
    const baseUrl = gatewayUrl.replace(/\/$/, '');
    let result;
    if (client === 'connect-json') result = await connectScenario(name, createConnectTransport({ baseUrl }));
    else if (client === 'connect-binary') result = await connectScenario(name, createConnectTransport({ baseUrl, useBinaryFormat: true }));
    else if (client === 'connect-grpc-web') result = await connectScenario(name, createGrpcWebTransport({ baseUrl }));
    else if (client === 'grpc-web-text') result = await grpcWebScenario(name, baseUrl, 'text');
    else if (client === 'grpc-web-binary') result = await grpcWebScenario(name, baseUrl, 'binary');
    else throw new Error(`no client ${client}`);
    return JSON.parse(JSON.stringify(result, (_, value) => (typeof value === 'bigint' ? value.toString() : value)));
  },
};
window.interopReady = true;
