// A generated TypeScript client: protoc-gen-es (run by `buf generate`) writes TypeScript from
// proto/octane into ./generated/, tsc type-checks generated-client.ts against it (strict),
// esbuild bundles it, and its typed calls run against the real gateway over Connect, gRPC-Web
// and gRPC.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { build, stop as stopEsbuild } from 'esbuild';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { OCTANE_PROTO_ROOT, here, startDemo } from './common.mjs';

const generated = path.join(here, 'generated');
const bin = (name) => path.join(here, 'node_modules', '.bin', name);

/** Runs a tool to completion; throws with its output if it fails. */
function run(command, args, what) {
  const result = spawnSync(command, args, { cwd: here, encoding: 'utf8', timeout: 120000 });
  if (result.error) throw new Error(`${what}: cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${what} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

let client;
let demo;

before(async () => {
  // The tools first: the demo's renderer keeps both cores busy once it runs.
  rmSync(generated, { recursive: true, force: true });
  mkdirSync(generated, { recursive: true });
  const template = { version: 'v2', plugins: [{ local: bin('protoc-gen-es'), out: generated, opt: ['target=ts'] }] };
  run(bin('buf'), ['generate', OCTANE_PROTO_ROOT, '--template', JSON.stringify(template)], 'buf generate (protoc-gen-es)');
  // Strict type check of the client against the generated code.
  const tsconfig = {
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'es2022', moduleResolution: 'bundler', skipLibCheck: true, lib: ['es2022', 'dom'] },
    files: [path.join(here, 'generated-client.ts')],
  };
  writeFileSync(path.join(generated, 'tsconfig.json'), JSON.stringify(tsconfig));
  run(bin('tsc'), ['-p', path.join(generated, 'tsconfig.json')], 'tsc --noEmit');
  const outfile = path.join(generated, 'generated-client.mjs');
  await build({ entryPoints: [path.join(here, 'generated-client.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'silent' });
  // esbuild's service process would keep Node alive for half a minute after the tests.
  await stopEsbuild();
  client = await import(pathToFileURL(outfile).href);
  demo = await startDemo();
});

after(async () => {
  await demo?.stop();
});

const TRANSPORTS = [
  ['Connect binary', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true })],
  ['gRPC-Web', (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' })],
  ['gRPC', (baseUrl) => createGrpcTransport({ baseUrl, httpVersion: '2' })],
];

TRANSPORTS.forEach(([name, make], index) => {
  describe(`generated TypeScript client over ${name}`, () => {
    const transport = () => make(demo.url.replace(/\/$/, ''));

    test('typed SetCamera / GetCamera', async () => {
      const position = [1.5 + index, 2.5, -4.5];
      const read = await client.cameraRoundTrip(transport(), position, 36.5 + index);
      assert.deepEqual(read, { position, fov: 36.5 + index });
    });

    test('scene items typed with the generated NodePinType enum', async () => {
      const items = await client.ownedItemTypes(transport());
      assert.ok(items.length >= 1);
      assert.ok(items.some((item) => item.type === 'PT_CAMERA'), JSON.stringify(items));
      assert.ok(items.every((item) => typeof item.type === 'string'), 'every outType is a known enum value');
    });

    test('callbackChannel notifications, then a grabbed LDR_RGBA image', async () => {
      const seen = await client.imagesAfterNotifications(transport(), 3, BigInt(5100 + index));
      assert.equal(seen.notifications, 3);
      assert.deepEqual([seen.imageType, seen.width, seen.height], ['LDR_RGBA', 256, 128]);
    });

    test('a bad handle fails with NotFound', async () => {
      assert.equal(await client.badHandleCode(transport()), 'NotFound');
    });
  });
});
