// The same Connect and gRPC-Web calls from a page in headless Chromium: @connectrpc/connect-web
// (Connect JSON, Connect binary and gRPC-Web transports) and Google's grpc-web, bundled with esbuild at test
// time. The page is served by a tiny static server on another port than the gateway, so every
// call is cross-origin and the gateway's CORS answers (preflights, exposed grpc-status /
// grpc-message headers) are part of what is tested. The page's origin is allowed with
// `--cors-origin`, as the gateway refuses pages of other origins (other loopback ports
// included) unless listed; a page on an unlisted port is refused with PERMISSION_DENIED.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build, stop as stopEsbuild } from 'esbuild';
import { MISSING_PROTO_ROOT, OCTANE_PROTO_ROOT, buildDescriptorSet, here, launchBrowser, openPage, startDemo, startStaticServer } from './common.mjs';
import { grewSomewhere } from './scenarios.mjs';

const PAGE = `<!doctype html><meta charset="utf-8"><title>octaneweb interop</title><script type="module" src="/bundle.js"></script>`;

let demo;
let site;
let otherSite;
let browser;
let page;

before(async () => {
  const bundle = await build({ entryPoints: [path.join(here, 'browser-page.mjs')], bundle: true, format: 'esm', platform: 'browser', target: 'chrome110', write: false, logLevel: 'silent' });
  // esbuild's service process would keep Node alive for half a minute after the tests.
  await stopEsbuild();
  const files = new Map([
    ['/', { type: 'text/html; charset=utf-8', body: PAGE }],
    ['/bundle.js', { type: 'text/javascript', body: bundle.outputFiles[0].contents }],
    ['/octane.binpb', { type: 'application/octet-stream', body: buildDescriptorSet(OCTANE_PROTO_ROOT) }],
    ['/missing.binpb', { type: 'application/octet-stream', body: buildDescriptorSet(MISSING_PROTO_ROOT) }],
  ]);
  // The same page on two ports: one allowed with --cors-origin, one not.
  [site, otherSite] = await Promise.all([startStaticServer(files), startStaticServer(files)]);
  demo = await startDemo({ extraArgs: ['--cors-origin', new URL(site.url).origin] });
  browser = await launchBrowser();
  page = await openPage(browser);
  await page.goto(site.url);
  await page.waitForFunction(() => window.interopReady === true, null, { timeout: 20000 });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await otherSite?.close();
  await demo?.stop();
});

/** Runs one scenario in the page; rejects with the page's error message if it failed. */
function run(client, scenario) {
  return page.evaluate(([c, s, url]) => window.interop.run(c, s, url), [client, scenario, demo.url]);
}

test('the page and the gateway are different origins', () => {
  assert.notEqual(new URL(site.url).origin, new URL(demo.url).origin);
});

const CONNECT_WEB_TRANSPORTS = { 'connect-json': 'Connect JSON', 'connect-binary': 'Connect binary', 'connect-grpc-web': 'gRPC-Web' };
for (const [client, transportName] of Object.entries(CONNECT_WEB_TRANSPORTS)) {
  describe(`@connectrpc/connect-web, ${transportName} transport`, () => {
    test('unary: SetCamera then GetCamera', async () => {
      const camera = await run(client, 'camera');
      assert.deepEqual(camera.position, { x: 3.5, y: 1.75, z: -6.25 });
      assert.equal(camera.fov, 47.5 + 1.5, 'the fov-only SetCamera applied');
    });

    test('unary: scene walk', async () => {
      const items = await run(client, 'scene');
      assert.ok(items.length >= 1);
      assert.ok(items.every((item) => item.name.length > 0));
    });

    test('server stream: callbackChannel with growing samples', async () => {
      const seen = await run(client, 'stream');
      assert.ok(seen.newImages >= 3);
      assert.deepEqual(seen.size, [256, 128]);
      assert.ok(grewSomewhere(seen.spp), `samples per pixel: ${seen.spp}`);
    });

    test('errors: NOT_FOUND for a bad handle, UNIMPLEMENTED/NOT_FOUND for unknown methods', async () => {
      const failure = await run(client, 'badHandle');
      assert.equal(failure.codeName, 'NotFound', JSON.stringify(failure));
      assert.match(failure.message, /no object with handle 987654321/);
      for (const unknown of await run(client, 'unknown')) {
        assert.ok(['Unimplemented', 'NotFound'].includes(unknown.codeName), JSON.stringify(unknown));
      }
    });
  });
}

for (const format of ['text', 'binary']) {
  describe(`grpc-web (Google), format '${format}'`, () => {
    test('unary: SetCamera then GetCamera', async () => {
      const camera = await run(`grpc-web-${format}`, 'camera');
      assert.deepEqual(camera.position, { x: 3.5, y: 1.75, z: -6.25 });
      assert.equal(camera.fov, 47.5);
    });

    test('server streaming: callbackChannel, then grabbed samples grow', async () => {
      const seen = await run(`grpc-web-${format}`, 'stream');
      assert.ok(seen.newImages >= 3);
      if (format === 'text') {
        // The browser's XHR hands text-mode messages over as they arrive: three notifications
        // well before the 2.5 s deadline means the gateway streams rather than buffers.
        assert.equal(seen.ended, 'enough', JSON.stringify(seen));
        assert.ok(seen.streamMs < 2000, `first notifications after ${seen.streamMs} ms`);
      }
      assert.deepEqual(seen.size, [256, 128]);
      assert.ok(seen.spp[1] > seen.spp[0]);
    });

    test('error: NOT_FOUND for a bad handle, with the message readable cross-origin', async () => {
      const failure = await run(`grpc-web-${format}`, 'badHandle');
      assert.equal(failure.code, 5, JSON.stringify(failure));
      assert.match(failure.message, /no object with handle 987654321/);
    });
  });
}

describe('a page on an origin not listed with --cors-origin (another loopback port)', () => {
  let other;
  before(async () => {
    other = await openPage(browser);
    await other.goto(otherSite.url);
    await other.waitForFunction(() => window.interopReady === true, null, { timeout: 20000 });
  });
  after(() => other?.context().close());

  /** Runs one scenario in the unlisted page. */
  const runOther = (client, scenario) => other.evaluate(([c, s, url]) => window.interop.run(c, s, url), [client, scenario, demo.url]);

  for (const client of Object.keys(CONNECT_WEB_TRANSPORTS)) {
    test(`${client}: PERMISSION_DENIED, readable, naming --cors-origin`, async () => {
      const failure = await runOther(client, 'getCameraFails');
      assert.equal(failure.codeName, 'PermissionDenied', JSON.stringify(failure));
      assert.match(failure.message, /--cors-origin/);
    });
  }

  for (const format of ['text', 'binary']) {
    test(`grpc-web ${format}: PERMISSION_DENIED`, async () => {
      const failure = await runOther(`grpc-web-${format}`, 'getCameraFails');
      assert.equal(failure.code, 7, JSON.stringify(failure));
      assert.match(failure.message, /--cors-origin/);
    });
  }

  test('the listed page still calls', async () => {
    const camera = await run('connect-json', 'camera');
    assert.equal(camera.fov, 47.5 + 1.5);
  });
});

test('no uncaught exceptions in the page', () => {
  assert.deepEqual(
    page.problems.filter((problem) => problem.startsWith('exception:')),
    [],
  );
});
