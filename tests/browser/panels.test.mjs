// The side panels against the real demo: the scene outliner, and the API explorer making a
// unary call, showing a precise error, running and cancelling a server stream, and replaying.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { callJson, launchBrowser, openPage, screenshot, startDemo } from './harness.mjs';

describe('panels', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let page;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('the outliner lists the scene graph and the meshes', async () => {
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    await page.waitForFunction(() => document.getElementById('mesh-list').dataset.state === 'ready');
    const items = await page.locator('#outliner li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    // The root plus at least one item it owns.
    assert.ok(items.length >= 2, `outliner items: ${JSON.stringify(items)}`);
    assert.ok(items.slice(1).every((name) => name && name.length > 0), `unnamed items: ${JSON.stringify(items)}`);

    const { meshes = [] } = await callJson(demo.url, 'LiveLink', 'GetMeshes');
    assert.ok(meshes.length > 0, 'the demo scene has meshes');
    const shown = await page.locator('#mesh-list li').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    for (const mesh of meshes) assert.ok(shown.includes(mesh.name), `mesh ${mesh.name} missing from ${JSON.stringify(shown)}`);

    // A graph item expands lazily (if the scene has nested graphs).
    const nested = page.locator('#outliner li.graph[aria-level="2"] > .row > .ol-twisty').first();
    if (await nested.count()) {
      await nested.click();
      await page.waitForFunction(() => {
        const li = document.querySelector('#outliner li.graph[aria-level="2"]');
        return li?.getAttribute('aria-expanded') === 'true' && !li.querySelector(':scope > ul')?.textContent.includes('Loading');
      });
    }
    await screenshot(page, 'outliner');
    assert.deepEqual(page.problems, []);
  });

  test('the explorer makes a unary call and shows the response', async () => {
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.ok(Number(await page.getAttribute('#explorer', 'data-methods')) > 10);
    await page.fill('#explorer-search', 'GetCamera');
    await page.click('button[data-method="livelinkapi.LiveLinkService/GetCamera"]');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    const response = JSON.parse(await page.textContent('#explorer-response'));
    assert.ok(response.position, `GetCamera response: ${JSON.stringify(response)}`);
    assert.match(await page.textContent('#explorer-status'), /OK/);
    assert.match(await page.textContent('#explorer-curl-text'), /curl .*LiveLinkService\/GetCamera/);
    await screenshot(page, 'explorer-unary');
  });

  test('the request form is generated from the schema (oneofs, nested messages, 64-bit ints)', async () => {
    await page.fill('#explorer-search', 'SetCamera');
    await page.click('button[data-method="livelinkapi.LiveLinkService/SetCamera"]');
    // CameraState: four oneofs.
    assert.equal(await page.locator('#explorer-form fieldset.oneof').count(), 4);
    const fovOneof = page.locator('#explorer-form fieldset.oneof').nth(3);
    await fovOneof.locator('select').selectOption('fov');
    await fovOneof.locator('input').fill('40');
    await page.click('.editor-tabs [role="tab"]:has-text("JSON")');
    assert.deepEqual(JSON.parse(await page.inputValue('#explorer-json')), { fov: 40 });
    await page.click('.editor-tabs [role="tab"]:has-text("Form")');

    // ApiItem.name takes an ObjectRef: a uint64 handle (a string in JSON) and an enum.
    await page.fill('#explorer-search', 'ApiItemService/name');
    await page.click('button[data-method="octaneapi.ApiItemService/name"]');
    const objectPtr = page.locator('#explorer-form [data-field="objectPtr"]');
    await objectPtr.locator('summary').first().click();
    await objectPtr.locator('[data-field="handle"] input').fill('not-a-number');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    assert.match(await page.textContent('#explorer-response'), /objectPtr\.handle/);
    assert.equal(await objectPtr.locator('[data-field="handle"] input').getAttribute('aria-invalid'), 'true');
  });

  test('generated forms round-trip repeated fields, maps, nested messages, oneofs and well-known types', async () => {
    const result = await page.evaluate(async () => {
      const { requestForm } = await import(new URL('js/form.js', location.href).href);
      const field = (name, number, kind, extra = {}) => ({ name, json_name: name, number, kind, label: 'optional', repeated: false, ...extra });
      const schema = {
        enums: { 't.Color': { values: [{ name: 'RED', number: 0 }, { name: 'BLUE', number: 1 }] } },
        messages: {
          't.Point': { fields: [field('x', 1, 'double'), field('y', 2, 'double')], oneofs: [] },
          't.Req': {
            fields: [
              field('ids', 1, 'uint64', { label: 'repeated', repeated: true }),
              field('points', 2, 'message', { label: 'repeated', repeated: true, type_name: 't.Point' }),
              field('labels', 3, 'map', { repeated: true, map: { key_kind: 'string', value_kind: 'int32' } }),
              field('origin', 4, 'message', { type_name: 't.Point' }),
              field('color', 5, 'enum', { type_name: 't.Color' }),
              field('name', 6, 'string', { oneof: 'pick' }),
              field('count', 7, 'sint64', { oneof: 'pick' }),
              field('when', 8, 'message', { type_name: 'google.protobuf.Timestamp' }),
              field('maybe', 9, 'message', { type_name: 'google.protobuf.Int32Value' }),
              field('flag', 10, 'bool'),
            ],
            oneofs: [{ name: 'pick', synthetic: false, fields: ['name', 'count'] }],
          },
        },
      };
      const value = {
        ids: ['18446744073709551615', '1'],
        points: [{ x: 1.5, y: -2 }, { x: 3 }],
        labels: { a: 1, b: 2 },
        origin: { y: 4 },
        color: 'BLUE',
        count: '-9223372036854775808',
        when: '2026-01-01T00:00:00Z',
        maybe: 7,
        flag: true,
      };
      const form = requestForm(schema, 't.Req');
      document.body.append(form.el);
      form.set(value);
      const roundTrip = form.get();
      // A value out of range for its type is refused with the field's path.
      form.set({ ...value, ids: ['18446744073709551616'] });
      let error = '';
      try {
        form.get();
      } catch (err) {
        error = err.message;
      }
      form.el.remove();
      return { value, roundTrip, error };
    });
    assert.deepEqual(result.roundTrip, result.value);
    assert.match(result.error, /^ids\[0\]: out of range for uint64/);
  });

  test('the explorer shows the precise error of a failing call', async () => {
    const objectPtr = page.locator('#explorer-form [data-field="objectPtr"]');
    await objectPtr.locator('[data-field="handle"] input').fill('18446744073709551615');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    const status = await page.textContent('#explorer-status');
    assert.match(status, /HTTP [45]\d\d/);
    const text = await page.textContent('#explorer-response');
    assert.ok(text.trim().length > 5, `error text: ${text}`);
    await screenshot(page, 'explorer-error');
  });

  test('the explorer runs a server stream and cancels it', async () => {
    // New images keep the callback stream busy.
    await callJson(demo.url, 'ApiRenderEngine', 'restartRendering');
    await page.fill('#explorer-search', 'callbackChannel');
    await page.click('button[data-method="octaneapi.StreamCallbackService/callbackChannel"]');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.waitForFunction(() => Number(document.getElementById('explorer').dataset.messages) >= 1, null, { timeout: 20000 });
    assert.equal(await page.isEnabled('#explorer-cancel'), true);
    await page.click('#explorer-cancel');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'cancelled');
    assert.match(await page.textContent('#explorer-status'), /Cancelled after \d+ message/);
    assert.equal(await page.isEnabled('#explorer-cancel'), false);
    await screenshot(page, 'explorer-stream-cancelled');
  });

  test('client-streaming methods open a stream over the WebSocket instead of a JSON call', async () => {
    // Running them is covered by streaming.test.mjs.
    await page.fill('#explorer-search', 'StreamCamera');
    await page.click('button[data-method="livelinkapi.LiveLinkService/StreamCamera"]');
    assert.equal(await page.textContent('#explorer-call'), 'Open stream');
    assert.equal(await page.isDisabled('#explorer-call'), false);
    assert.equal(await page.isDisabled('#explorer-send'), true);
    // curl cannot stream requests: no curl command, an rpc.js snippet instead.
    assert.ok(await page.isHidden('#explorer-curl'));
    assert.ok(await page.isHidden('#explorer-curl-box'));
    assert.ok(await page.isVisible('#explorer-snippet'));
    assert.match(await page.textContent('#explorer-status'), /client stream: open the stream.*WebSocket/);
  });

  test('calls are kept in a history that can be replayed', async () => {
    const entries = page.locator('#explorer-history > li[data-index]');
    const count = await entries.count();
    assert.ok(count >= 3, `history has ${count} entries`);
    // The oldest entry is the GetCamera call.
    const oldest = entries.nth(count - 1);
    assert.match(await oldest.textContent(), /GetCamera/);
    await oldest.locator('button:has-text("Replay")').click();
    await page.waitForFunction((n) => document.querySelectorAll('#explorer-history > li[data-index]').length === n + 1, count);
    assert.match(await entries.first().textContent(), /GetCamera.*OK/);
    assert.equal(await page.getAttribute('#explorer', 'data-selected'), 'livelinkapi.LiveLinkService/GetCamera');
    assert.deepEqual(page.problems.filter((p) => !/status of [45]\d\d/.test(p)), []);
  });
});
