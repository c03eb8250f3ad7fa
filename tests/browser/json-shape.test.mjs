// The web client in front of a gateway whose JSON answers are camelCase without defaults
// (`serve --json-names camel --json-defaults omit`): it reads either names and takes a field
// left out as its default, so the scene, the camera and the inspector's values show as with
// the default shape. Real processes: `octaneweb render-server` and `octaneweb serve` on
// loopback.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  callJson, freePort, launchBrowser, openPage, portOpen, screenshot, startCommand, waitForFrames,
} from './harness.mjs';

/** The scene's camera node, walked to through the JSON route. */
async function cameraNode(baseUrl) {
  const root = (await callJson(baseUrl, 'ApiProjectManager', 'rootNodeGraph')).result;
  const owned = await callJson(baseUrl, 'ApiNodeGraph', 'getOwnedItems', { objectPtr: root });
  const { result: size } = await callJson(baseUrl, 'ApiItemArray', 'size', { objectPtr: owned.list });
  for (let index = 0; index < Number(size); index += 1) {
    const { result: item } = await callJson(baseUrl, 'ApiItemArray', 'get', { objectPtr: owned.list, index });
    if ((await callJson(baseUrl, 'ApiItem', 'name', { objectPtr: item })).result === 'Camera') return item;
  }
  throw new Error('no Camera in the scene');
}

describe('json shape', { timeout: 180000 }, () => {
  let renderServer;
  let gateway;
  let browser;
  let gatewayUrl;

  before(async () => {
    const upstreamPort = await freePort();
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}/`;
    renderServer = await startCommand(
      ['render-server', '--listen', `127.0.0.1:${upstreamPort}`, '--width', '256', '--height', '128'],
      () => portOpen(upstreamPort),
    );
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${upstreamPort}`,
        '--json-names', 'camel', '--json-defaults', 'omit'],
      async () => (await fetch(`${gatewayUrl}health`)).ok,
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await renderServer?.stop();
  });

  test('the gateway answers in camelCase, and the page still reads the scene and its values', async () => {
    // A client that asks for nothing gets the flags' shape: the value's oneof member is
    // `float3_value` in the .proto.
    const camera = await cameraNode(gatewayUrl);
    const value = await callJson(gatewayUrl, 'ApiNode', 'getPinValueByIx', { objectPtr: camera, index: 0 });
    assert.ok(value.float3Value, JSON.stringify(value));

    const page = await openPage(browser);
    await page.goto(gatewayUrl);
    await waitForFrames(page, 1, 30000);
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready', null, { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready', null, { timeout: 30000 });
    const row = page.locator('#outliner li[aria-level="2"][data-name="Camera"]');
    await row.locator(':scope > .row .ol-name').click();
    await page.waitForFunction((handle) => {
      const inspector = document.getElementById('inspector');
      return inspector.dataset.state === 'ready' && inspector.dataset.handle === handle;
    }, camera.handle, { timeout: 30000 });
    // The camera's position (a value node linked into pin 0) shows the server's numbers; a
    // component at 0 is one the gateway left out.
    const expected = ['x', 'y', 'z'].map((axis) => value.float3Value[axis] ?? 0);
    const shown = await page.locator('#inspector .value-row[data-pin="P_POSITION"] input[type="number"]').evaluateAll(
      (inputs) => inputs.map((input) => input.value),
    );
    assert.equal(shown.length, 3, `position editors: ${JSON.stringify(shown)}`);
    shown.forEach((text, i) => {
      assert.ok(text !== '' && Math.abs(Number(text) - expected[i]) < 1e-3, `shown ${JSON.stringify(shown)}, server ${JSON.stringify(expected)}`);
    });
    await screenshot(page, 'json-shape-camel');
    assert.deepEqual(page.problems.filter((p) => p.startsWith('exception')), []);
    await page.context().close();
  });
});
