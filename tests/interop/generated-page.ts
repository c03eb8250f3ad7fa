// The page of generated-client.test.mjs's browser tests, bundled by esbuild at test time: the
// same typed client (generated-client.ts over the code protoc-gen-es wrote from the running
// gateway's /schema.binpb) on @connectrpc/connect-web's transports, over the browser's fetch.
// `window.typedClient.run(transport, scenario, gatewayUrl)` runs one call shape and resolves
// to a JSON-safe summary; a failure rejects with the reason.

import type { Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import { badHandleCode, cameraRoundTrip, imagesAfterNotifications } from './generated-client';

const TRANSPORTS: Record<string, (baseUrl: string) => Transport> = {
  'connect-json': (baseUrl) => createConnectTransport({ baseUrl }),
  'connect-binary': (baseUrl) => createConnectTransport({ baseUrl, useBinaryFormat: true }),
  'grpc-web': (baseUrl) => createGrpcWebTransport({ baseUrl }),
};

async function run(transportName: string, scenario: string, gatewayUrl: string): Promise<unknown> {
  const make = TRANSPORTS[transportName];
  if (!make) throw new Error(`no transport ${transportName}`);
  const transport = make(gatewayUrl.replace(/\/$/, ''));
  switch (scenario) {
    case 'unary':
      return cameraRoundTrip(transport, [2.5, 1.25, -5.5], 41.5);
    case 'serverStream':
      return imagesAfterNotifications(transport, 2, 7100n);
    case 'badHandle':
      return badHandleCode(transport);
    default:
      throw new Error(`no scenario ${scenario}`);
  }
}

declare global {
  interface Window {
    typedClient: { run: typeof run };
    typedClientReady: boolean;
  }
}

window.typedClient = { run };
window.typedClientReady = true;
