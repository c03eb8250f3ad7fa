// Transport fallback and connection status against the real demo: with the WebSocket
// blocked the viewport streams over SSE, with SSE blocked too it polls; when the gateway
// becomes unreachable a banner says so and the page recovers by itself.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BLOCK_WEBSOCKET, canvasStats, launchBrowser, openPage, screenshot, startDemo, waitForFrames,
} from './harness.mjs';

describe('fallback', { timeout: 180000 }, () => {
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

  test('with the WebSocket blocked the viewport falls back to SSE', async () => {
    const page = await openPage(browser, { initScript: BLOCK_WEBSOCKET });
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.mode === 'sse');
    const frames = await waitForFrames(page, 0);
    assert.ok(frames >= 1);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'sse');
    assert.match(await page.textContent('#mode-indicator'), /SSE/);
    assert.match(await page.getAttribute('#viewport', 'data-last-failure'), /^ws:/);
    const stats = await canvasStats(page);
    assert.equal(stats.width, 256);
    assert.ok(stats.std > 5, `SSE image is blank: ${JSON.stringify(stats)}`);
    await screenshot(page, 'fallback-sse');
    await page.context().close();
  });

  test('with the WebSocket and SSE blocked the viewport falls back to polling', async () => {
    const page = await openPage(browser, { initScript: BLOCK_WEBSOCKET });
    await page.route('**/render/stream', (route) => route.abort('connectionrefused'));
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.mode === 'poll');
    await waitForFrames(page, 0);
    assert.match(await page.textContent('#mode-indicator'), /Polling/);
    assert.match(await page.getAttribute('#viewport', 'data-last-failure'), /^sse:/);
    const stats = await canvasStats(page);
    assert.equal(stats.height, 128);
    assert.ok(stats.std > 5, `polled image is blank: ${JSON.stringify(stats)}`);
    // Polling keeps up with new frames.
    const frames = await waitForFrames(page, 0);
    await waitForFrames(page, frames);
    await screenshot(page, 'fallback-poll');
    await page.context().close();
  });

  test('?transport=poll starts with polling', async () => {
    const page = await openPage(browser);
    await page.goto(`${demo.url}?transport=poll`);
    await waitForFrames(page, 0);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'poll');
    await page.context().close();
  });

  test('the transport chosen in Settings is used at once and after a reload', async () => {
    const page = await openPage(browser);
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    await page.click('#btn-settings');
    await page.selectOption('#set-transport', 'sse');
    await page.fill('#set-maxfps', '10');
    await screenshot(page, 'settings');
    await page.click('#btn-settings-save');
    await page.waitForFunction(() => document.getElementById('viewport').dataset.mode === 'sse');
    await waitForFrames(page, Number(await page.getAttribute('#viewport', 'data-frames')));
    await page.reload();
    await page.waitForFunction(() => document.getElementById('viewport').dataset.mode === 'sse');
    await waitForFrames(page, 0);
    await page.click('#btn-settings');
    assert.equal(await page.inputValue('#set-maxfps'), '10');
    await page.keyboard.press('Escape');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a banner shows while the gateway is down and the page recovers by itself', async () => {
    const page = await openPage(browser);
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    assert.equal(await page.isHidden('#banner'), true);
    // A real outage: the gateway (and its in-process render server) goes away...
    const { port } = new URL(demo.url);
    await demo.stop();
    await page.waitForSelector('#banner:not([hidden])', { timeout: 20000 });
    assert.match(await page.textContent('#banner'), /gateway is unreachable/i);
    assert.equal(await page.getAttribute('#conn-indicator', 'data-state'), 'down');
    // The last frame stays, marked as old.
    await page.waitForSelector('#stale-mark:not([hidden])');
    assert.equal(await page.getAttribute('#viewport', 'data-stale'), '1');
    await screenshot(page, 'gateway-down');
    const frames = Number(await page.getAttribute('#viewport', 'data-frames'));
    // ...and comes back on the same address.
    demo = await startDemo({ listen: `127.0.0.1:${port}` });
    await page.waitForSelector('#banner', { state: 'hidden', timeout: 30000 });
    // Frames flow again over the preferred transport, without a reload.
    await waitForFrames(page, frames, 30000);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    assert.equal(await page.getAttribute('#conn-indicator', 'data-state'), 'ok');
    await page.waitForSelector('#stale-mark', { state: 'hidden' });
    await screenshot(page, 'gateway-recovered');
    await page.context().close();
  });
});
