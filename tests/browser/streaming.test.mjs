// The web client's streaming paths against the real demo: camera drags stream over /ws
// (LiveLink StreamCamera, confirmed by /metrics and GetCamera) and fall back to SetCamera
// when /ws cannot open; the explorer runs a client stream (send, half-close, answer) and
// cancels one; the outliner reads a level with POST /batch; rpc.js against the real /ws.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BLOCK_WEBSOCKET, callCount, callJson, launchBrowser, openPage, screenshot, startDemo,
} from './harness.mjs';

const STREAM_CAMERA = 'livelinkapi.LiveLinkService/StreamCamera';
const SET_CAMERA = 'livelinkapi.LiveLinkService/SetCamera';

function distance(a, b) {
  return Math.hypot(
    (a.position?.x ?? 0) - (b.position?.x ?? 0),
    (a.position?.y ?? 0) - (b.position?.y ?? 0),
    (a.position?.z ?? 0) - (b.position?.z ?? 0),
  );
}

/** Drags across the middle of the viewport with the left button. */
async function drag(page, steps = 8) {
  const box = await page.locator('#viewport').boundingBox();
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (let i = 1; i <= steps; i += 1) await page.mouse.move(x + i * 15, y + i * 3);
  await page.mouse.up();
}

describe('streaming', { timeout: 180000 }, () => {
  let demo;
  let browser;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('a camera drag streams over /ws with StreamCamera and moves the camera', async () => {
    const page = await openPage(browser);
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    // The camera opens the socket once it has loaded, before any drag.
    await page.waitForFunction(() => window.octaneweb.rpc.connected);
    const before_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const streamsBefore = await callCount(demo.url, 'websocket', STREAM_CAMERA, 'OK');
    const setCameraBefore = await callCount(demo.url, 'json', SET_CAMERA);

    await drag(page);
    // The stream ends on release; its answer means every state it carried was applied.
    await page.waitForFunction(() => {
      const el = document.getElementById('viewport');
      return Number(el.dataset.cameraStreams) >= 1 && el.dataset.cameraBusy === '0';
    });
    assert.equal(await page.getAttribute('#viewport', 'data-camera-transport'), 'ws');
    const after_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(distance(after_, before_) > 0.01, `camera did not move: ${JSON.stringify({ before_, after_ })}`);
    // The page's camera and the server's agree: the last streamed state was applied.
    const shown = await page.evaluate(() => window.octaneweb.camera.camera.position);
    assert.ok(distance(after_, { position: shown }) < 1e-3, `server ${JSON.stringify(after_.position)} vs page ${JSON.stringify(shown)}`);

    assert.ok(await callCount(demo.url, 'websocket', STREAM_CAMERA, 'OK') > streamsBefore, 'the gateway saw a StreamCamera call over /ws');
    assert.equal(await callCount(demo.url, 'json', SET_CAMERA), setCameraBefore, 'the drag made no SetCamera JSON calls');

    // A second drag opens a second stream on the same socket.
    await drag(page, 4);
    await page.waitForFunction(() => Number(document.getElementById('viewport').dataset.cameraStreams) >= 2
      && document.getElementById('viewport').dataset.cameraBusy === '0');
    assert.equal(await page.evaluate(() => window.octaneweb.rpc.stats.opened), 1, 'one socket for both drags');
    await screenshot(page, 'camera-streamed');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('without /ws a camera drag falls back to SetCamera', async () => {
    const page = await openPage(browser, { initScript: BLOCK_WEBSOCKET });
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    const before_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const setCameraBefore = await callCount(demo.url, 'json', SET_CAMERA);
    await drag(page);
    await page.waitForFunction(() => {
      const el = document.getElementById('viewport');
      return el.dataset.cameraTransport === 'json' && el.dataset.cameraBusy === '0';
    });
    const after_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(distance(after_, before_) > 0.01, `camera did not move: ${JSON.stringify({ before_, after_ })}`);
    const shown = await page.evaluate(() => window.octaneweb.camera.camera.position);
    assert.ok(distance(after_, { position: shown }) < 1e-3, 'the newest state reached the server');
    assert.ok(await callCount(demo.url, 'json', SET_CAMERA) > setCameraBefore, 'SetCamera carried the drag');
    await page.context().close();
  });

  test('the outliner reads a level with POST /batch instead of one call per item', async () => {
    const page = await openPage(browser);
    const requests = [];
    // Other panels batch their own calls (the render engine's hardware, say): a batch is the
    // outliner's when it reads items.
    const itemBatches = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (request.method() !== 'POST') return;
      requests.push(url.pathname);
      if (url.pathname !== '/batch') return;
      const calls = request.postDataJSON() ?? [];
      if (calls.some((c) => c.service === 'ApiItemArray' || c.service === 'ApiItem')) itemBatches.push(calls.map((c) => `${c.service}/${c.method}`));
    });
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    const items = await page.locator('#outliner li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    assert.ok(items.length >= 3, `outliner items: ${JSON.stringify(items)}`);
    assert.ok(items.slice(1).every((name) => name), `unnamed items: ${JSON.stringify(items)}`);
    const batches = itemBatches.length;
    const itemCalls = requests.filter((p) => p.startsWith('/ApiItem/') || p.startsWith('/ApiItemArray/get'));
    // The root level: one batch of gets, one batch of name/isGraph/outType; the one single
    // call is the root graph's own name.
    assert.equal(batches, 2, `POST requests: ${JSON.stringify(requests)}, item batches: ${JSON.stringify(itemBatches)}`);
    assert.deepEqual(itemCalls, ['/ApiItem/name'], `per-item calls: ${JSON.stringify(requests)}`);
    // The names match what single calls answer.
    const root = await callJson(demo.url, 'ApiProjectManager', 'rootNodeGraph');
    const owned = await callJson(demo.url, 'ApiNodeGraph', 'getOwnedItems', { objectPtr: root.result });
    const first = await callJson(demo.url, 'ApiItemArray', 'get', { objectPtr: owned.list, index: 0 });
    const name = await callJson(demo.url, 'ApiItem', 'name', { objectPtr: first.result });
    assert.equal(items[1], name.result);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('the explorer runs a client stream: send twice, end sending, see the answer', async () => {
    const page = await openPage(browser);
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.fill('#explorer-search', 'StreamCamera');
    await page.click(`button[data-method="${STREAM_CAMERA}"]`);
    assert.equal(await page.textContent('#explorer-call'), 'Open stream');
    assert.equal(await page.isDisabled('#explorer-send'), true);
    await page.click('.editor-tabs [role="tab"]:has-text("JSON")');
    await page.fill('#explorer-json', JSON.stringify({ fov: 50 }));

    const before_ = await callCount(demo.url, 'websocket', STREAM_CAMERA, 'OK');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.click('#explorer-send');
    await page.fill('#explorer-json', JSON.stringify({ fov: 55 }));
    await page.click('#explorer-send');
    assert.equal(await page.getAttribute('#explorer', 'data-sent'), '2');
    await page.click('#explorer-end');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.match(await page.textContent('#explorer-response'), /applied 2 camera updates/);
    assert.match(await page.textContent('#explorer-status'), /Stream ended OK · 2 sent · 1 received/);
    assert.equal(await page.isDisabled('#explorer-send'), true);
    const camera = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(Math.abs(camera.fov - 55) < 1e-3, `fov ${camera.fov}`);
    assert.equal(await callCount(demo.url, 'websocket', STREAM_CAMERA, 'OK'), before_ + 1);
    await screenshot(page, 'explorer-client-stream');

    // A second stream, cancelled: the gateway cancels the upstream call too.
    const cancelledBefore = await callCount(demo.url, 'websocket', STREAM_CAMERA, 'CANCELLED');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.click('#explorer-send');
    await page.click('#explorer-cancel');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'cancelled');
    assert.match(await page.textContent('#explorer-status'), /Cancelled after 1 sent and 0 received/);
    assert.equal(await page.isDisabled('#explorer-send'), true);
    await waitFor(async () => await callCount(demo.url, 'websocket', STREAM_CAMERA, 'CANCELLED') > cancelledBefore);
    assert.match(await page.textContent('#explorer-history > li[data-index="0"]'), /StreamCamera.*cancelled/);

    // Replaying the first stream sends its two messages again and half-closes.
    await page.fill('#explorer-json', JSON.stringify({ fov: 30 }));
    await page.locator('#explorer-history > li[data-index="1"] button:has-text("Replay")').click();
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.match(await page.textContent('#explorer-status'), /Stream ended OK · 2 sent · 1 received/);
    assert.match(await page.textContent('#explorer-response'), /→ #1 \{"fov":50\}[\s\S]*applied 2 camera updates/);
    assert.ok(Math.abs((await callJson(demo.url, 'LiveLink', 'GetCamera')).fov - 55) < 1e-3);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('rpc.js: many calls share one socket; errors name the problem; a closed socket reopens', async () => {
    const page = await openPage(browser);
    await page.goto(demo.url);
    const result = await page.evaluate(async () => {
      const { RpcClient, RpcError } = await import(new URL('js/rpc.js', location.href).href);
      const rpc = new RpcClient(new URL('ws', location.href).href.replace(/^http/, 'ws'));
      const cameras = await Promise.all(Array.from({ length: 10 }, () => rpc.unary('LiveLink/GetCamera', {})));
      const errors = {};
      for (const [name, run] of Object.entries({
        unknownMethod: () => rpc.unary('LiveLink/NoSuchMethod', {}),
        badMessage: () => rpc.unary('LiveLink/SetCamera', { fov: 'wide' }),
        aborted: () => {
          const controller = new AbortController();
          const promise = rpc.unary('LiveLink/GetCamera', {}, { signal: controller.signal });
          controller.abort();
          return promise;
        },
      })) {
        try {
          await run();
          errors[name] = 'no error';
        } catch (err) {
          errors[name] = { isRpcError: err instanceof RpcError, code: err.code, message: err.message };
        }
      }
      // A server stream, left after three messages (which cancels it).
      let streamed = 0;
      for await (const event of rpc.serverStream('StreamCallback/callbackChannel', {})) {
        streamed += 1;
        if (streamed === 3 || !event) break;
      }
      const openedBefore = rpc.stats.opened;
      rpc.close();
      await new Promise((resolve) => rpc.addEventListener('close', resolve, { once: true }));
      const again = await rpc.unary('LiveLink/GetCamera', {});
      return { cameras: cameras.length, fov: cameras[0].fov, errors, streamed, openedBefore, openedAfter: rpc.stats.opened, again: Boolean(again.position) };
    });
    assert.equal(result.cameras, 10);
    assert.ok(result.fov > 0);
    assert.equal(result.openedBefore, 1, 'ten calls, one socket');
    assert.equal(result.errors.unknownMethod.code, 'NOT_FOUND');
    assert.match(result.errors.unknownMethod.message, /NoSuchMethod/);
    assert.equal(result.errors.badMessage.code, 'INVALID_ARGUMENT');
    assert.match(result.errors.badMessage.message, /fov/);
    assert.equal(result.errors.aborted.code, 'CANCELLED');
    assert.ok(result.errors.aborted.isRpcError);
    assert.equal(result.streamed, 3);
    assert.equal(result.openedAfter, 2, 'the next call opened a new socket');
    assert.equal(result.again, true);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('rpc.js: a stream whose reader falls behind is bounded and cancelled at the gateway', async () => {
    const CALLBACKS = 'octaneapi.StreamCallbackService/callbackChannel';
    const page = await openPage(browser);
    await page.goto(demo.url);
    const cancelledBefore = await callCount(demo.url, 'websocket', CALLBACKS, 'CANCELLED');
    const result = await page.evaluate(async () => {
      const { RpcClient } = await import(new URL('js/rpc.js', location.href).href);
      const rpc = new RpcClient(new URL('ws', location.href).href.replace(/^http/, 'ws'));
      const stream = rpc.serverStream('StreamCallback/callbackChannel', {});
      await new Promise((resolve) => rpc.addEventListener('open', resolve, { once: true }));
      // Flood the call with more messages than the page may hold, reading none of them
      // (the real stream is too slow to get there in a test).
      const { id } = stream.call;
      for (let i = 0; i < 10050; i += 1) rpc.onSocketMessage({ data: JSON.stringify({ id, message: { newImage: { user_data: String(i) } } }) });
      let read = 0;
      let error = null;
      try {
        for await (const message of stream) if (message) read += 1;
      } catch (err) {
        error = err.code;
      }
      return { read, error, running: rpc.calls.size };
    });
    // What was held is still delivered, then the error; nothing past the bound was kept.
    assert.equal(result.error, 'RESOURCE_EXHAUSTED');
    assert.ok(result.read >= 10000 && result.read <= 10002, `read ${result.read}`);
    assert.equal(result.running, 0);
    await waitFor(async () => await callCount(demo.url, 'websocket', CALLBACKS, 'CANCELLED') > cancelledBefore);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

/** Polls `check` until it resolves true (for effects only visible from outside the page). */
async function waitFor(check, timeoutMs = 10000) {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
