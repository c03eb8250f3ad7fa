// A generated TypeScript client, made the way docs/typed-clients.md tells a web developer to:
// the running gateway's schema is downloaded from `GET /schema.binpb` (no .proto file at
// hand), protoc-gen-es (run by `buf generate`) writes TypeScript from it into ./generated/,
// tsc type-checks generated-client.ts and generated-page.ts against it (strict), and esbuild
// bundles them twice: for Node, whose typed calls run over Connect, gRPC-Web and gRPC, and
// for a page in headless Chromium on another origin, whose calls run over connect-web's
// Connect and gRPC-Web transports (unary and server streaming).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { build, stop as stopEsbuild } from 'esbuild';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { here, launchBrowser, openPage, startDemo, startStaticServer } from './common.mjs';

const generated = path.join(here, 'generated');
const bin = (name) => path.join(here, 'node_modules', '.bin', name);

/** Runs a tool to completion; throws with its output if it fails. */
function run(command, args, what) {
  const result = spawnSync(command, args, { cwd: here, encoding: 'utf8', timeout: 120000 });
  if (result.error) throw new Error(`${what}: cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${what} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>octaneweb typed client</title><script type="module" src="/bundle.js"></script>`;

let client;
let demo;
let site;
let browser;
let page;
let schemaBytes;

before(async () => {
  rmSync(generated, { recursive: true, force: true });
  mkdirSync(generated, { recursive: true });
  // The page's own origin first, so the gateway can be told to let it in.
  const files = new Map([['/', { type: 'text/html; charset=utf-8', body: PAGE }]]);
  site = await startStaticServer(files);
  demo = await startDemo({ extraArgs: ['--cors-origin', new URL(site.url).origin] });

  // Step 1 of the docs: the live schema as a FileDescriptorSet.
  const response = await fetch(new URL('schema.binpb', demo.url));
  assert.equal(response.status, 200, 'GET /schema.binpb');
  assert.equal(response.headers.get('content-type'), 'application/x-protobuf');
  schemaBytes = new Uint8Array(await response.arrayBuffer());
  const schemaFile = path.join(generated, 'schema.binpb');
  writeFileSync(schemaFile, schemaBytes);

  // Step 2: generate from it.
  const template = { version: 'v2', plugins: [{ local: bin('protoc-gen-es'), out: generated, opt: ['target=ts'] }] };
  run(bin('buf'), ['generate', schemaFile, '--template', JSON.stringify(template)], 'buf generate (protoc-gen-es) from /schema.binpb');
  // Strict type check of the client and the page against the generated code.
  const tsconfig = {
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'es2022', moduleResolution: 'bundler', skipLibCheck: true, lib: ['es2022', 'dom'] },
    files: [path.join(here, 'generated-client.ts'), path.join(here, 'generated-page.ts')],
  };
  writeFileSync(path.join(generated, 'tsconfig.json'), JSON.stringify(tsconfig));
  run(bin('tsc'), ['-p', path.join(generated, 'tsconfig.json')], 'tsc --noEmit');
  const outfile = path.join(generated, 'generated-client.mjs');
  await build({ entryPoints: [path.join(here, 'generated-client.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'silent' });
  const pageBundle = await build({ entryPoints: [path.join(here, 'generated-page.ts')], bundle: true, platform: 'browser', format: 'esm', target: 'chrome110', write: false, logLevel: 'silent' });
  // esbuild's service process would keep Node alive for half a minute after the tests.
  await stopEsbuild();
  files.set('/bundle.js', { type: 'text/javascript', body: pageBundle.outputFiles[0].contents });
  client = await import(pathToFileURL(outfile).href);
  browser = await launchBrowser();
  page = await openPage(browser);
  await page.goto(site.url);
  await page.waitForFunction(() => window.typedClientReady === true, null, { timeout: 20000 });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await demo?.stop();
});

test('/schema.binpb is the whole live schema, with its comments', () => {
  const set = fromBinary(FileDescriptorSetSchema, schemaBytes);
  const names = set.file.map((file) => file.name);
  for (const name of ['livelink.proto', 'apirender.proto', 'scenegraph.proto']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
  // Dependencies come before the files that import them, as protoc writes a set.
  for (const [index, file] of set.file.entries()) {
    for (const dependency of file.dependency) assert.ok(names.indexOf(dependency) < index, `${dependency} before ${file.name}`);
  }
  const livelink = set.file.find((file) => file.name === 'livelink.proto');
  const comments = (livelink.sourceCodeInfo?.location ?? []).filter((location) => location.leadingComments.trim() !== '');
  assert.ok(comments.length > 0, 'livelink.proto keeps its source info and comments');
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

const PAGE_TRANSPORTS = { 'connect-json': 'Connect JSON', 'connect-binary': 'Connect binary', 'grpc-web': 'gRPC-Web' };
for (const [transport, name] of Object.entries(PAGE_TRANSPORTS)) {
  describe(`generated TypeScript client in Chromium over connect-web ${name}`, () => {
    const call = (scenario) => page.evaluate(([t, s, url]) => window.typedClient.run(t, s, url), [transport, scenario, demo.url]);

    test('unary: typed SetCamera / GetCamera', async () => {
      assert.deepEqual(await call('unary'), { position: [2.5, 1.25, -5.5], fov: 41.5 });
    });

    test('server streaming: callbackChannel notifications, then a grabbed image', async () => {
      const seen = await call('serverStream');
      assert.equal(seen.notifications, 2);
      assert.deepEqual([seen.imageType, seen.width, seen.height], ['LDR_RGBA', 256, 128]);
    });

    test('an error arrives as a typed ConnectError code', async () => {
      assert.equal(await call('badHandle'), 'NotFound');
    });
  });
}
