// The API explorer as its own program: a failed call is not a failed schema (the recovery
// handler must not reload the schema for it), the schema tells whether Octane's render
// services are behind the gateway at all, and notifications stay out of the way of the
// explorer's buttons (repeats collapse, clicks go through to what lies under them).

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, launchBrowser, openPage, portOpen, screenshot, startCommand, startDemo } from './harness.mjs';

const explorerState = (page) => page.getAttribute('#explorer', 'data-state');

/** Counts the page's GET /schema requests in `page.schemaRequests`. */
function countSchemaRequests(page) {
  page.schemaRequests = 0;
  page.on('request', (request) => {
    if (request.method() === 'GET' && new URL(request.url()).pathname.endsWith('/schema')) page.schemaRequests += 1;
  });
}

/**
 * A connection blip as the status module reports one (down, then up): main.js's recovery
 * handler runs, synchronously, as on a real reconnect. Resolves to the explorer's data-state
 * right after it, when a schema reload would already show as "loading".
 */
function connectionBlip(page) {
  return page.evaluate(() => {
    const { status } = window.octaneweb;
    status.update('down', 'unknown', 'test: a blip');
    status.update('up', 'up', '');
    return document.getElementById('explorer').dataset.state;
  });
}

async function callFromJson(page, methodPath, json) {
  await page.fill('#explorer-search', methodPath.split('.').pop());
  await page.click(`button[data-method="${methodPath}"]`);
  await page.click('.editor-tabs [role="tab"]:has-text("JSON")');
  await page.fill('#explorer-json', JSON.stringify(json));
  await page.click('#explorer-call');
}

describe('explorer', { timeout: 180000 }, () => {
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

  test('the explorer recovers from a failed call without reloading the schema', async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    countSchemaRequests(page);
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.equal(page.schemaRequests, 1, 'the schema is loaded once');

    // The render server refuses an object handle it never gave out.
    await callFromJson(page, 'octaneapi.ApiItemService/name', { objectPtr: { handle: '18446744073709551615' } });
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    assert.match(await page.textContent('#explorer-status'), /^Error · HTTP [45]\d\d/);
    assert.equal(await explorerState(page), 'ready', 'a failed call leaves the schema state alone');
    await screenshot(page, 'explorer-call-failed');

    // The recovery handler reloads what failed to load; the schema did not.
    assert.equal(await connectionBlip(page), 'ready', 'no schema reload started');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(page.schemaRequests, 1, 'GET /schema was not requested again');

    // And the explorer works: the next call succeeds, the failed one is in the history.
    await page.click('.editor-tabs [role="tab"]:has-text("Form")');
    await page.fill('#explorer-search', 'GetCamera');
    await page.click('button[data-method="livelinkapi.LiveLinkService/GetCamera"]');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.ok(JSON.parse(await page.textContent('#explorer-response')).position, 'GetCamera answered');
    assert.equal(await explorerState(page), 'ready');
    assert.equal(page.schemaRequests, 1);
    const outcomes = await page.locator('#explorer-history > li[data-index] .badge').allTextContents();
    assert.match(outcomes[0], /^OK/);
    assert.doesNotMatch(outcomes[1], /^OK/, 'the failed call is recorded as failed');
    await screenshot(page, 'explorer-call-recovered');
    assert.deepEqual(page.problems.filter((p) => !/status of [45]\d\d/.test(p)), []);
    await page.context().close();
  });

  test('a schema that failed to load is loaded again when the connection is back', async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    countSchemaRequests(page);
    await page.route('**/schema', (route) => route.abort('connectionrefused'));
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'error');
    assert.match(await page.textContent('#explorer-methods'), /Could not load the schema/);
    await page.unroute('**/schema');
    const before = page.schemaRequests;
    await connectionBlip(page);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.equal(page.schemaRequests, before + 1);
    assert.ok(Number(await page.getAttribute('#explorer', 'data-methods')) > 10);
    assert.deepEqual(page.problems.filter((p) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(p)), []);
    await page.context().close();
  });

  test("the schema tells whether Octane's render services are behind the gateway", async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.equal(await page.getAttribute('#explorer', 'data-octane'), 'true');
    const result = await page.evaluate(async () => {
      const { octaneSupport, hasOctaneRender, findMethod } = await import(new URL('js/schema.js', location.href).href);
      const { explorer } = window.octaneweb;
      // The "schema" event fires on every load with what the schema offers.
      const event = new Promise((resolve) => explorer.addEventListener('schema', (e) => resolve(e.detail.support), { once: true }));
      await explorer.load();
      const fromEvent = await event;
      const schema = structuredClone(explorer.schema);
      const without = (predicate) => ({ ...schema, services: schema.services.filter((s) => !predicate(s)) });
      const refusing = (service, method) => ({
        ...schema,
        services: schema.services.map((s) => (s.full_name !== service ? s : {
          ...s, methods: s.methods.map((m) => (m.name === method ? { ...m, refused: true } : m)),
        })),
      });
      return {
        demo: octaneSupport(schema),
        fromEvent,
        lenient: findMethod(schema, 'LiveLink', 'GetCamera')?.name ?? null,
        noLiveLink: octaneSupport(without((s) => s.full_name === 'livelinkapi.LiveLinkService')),
        noRenderEngine: hasOctaneRender(without((s) => s.full_name === 'octaneapi.ApiRenderEngineService')),
        channelRefused: octaneSupport(refusing('octaneapi.StreamCallbackService', 'callbackChannel')),
        empty: octaneSupport({ services: [], messages: {} }),
      };
    });
    assert.deepEqual(result.demo, { render: true, camera: true, scene: true, meshes: true, octane: true, generation: 2, missing: [] });
    assert.deepEqual(result.fromEvent, result.demo);
    assert.equal(result.lenient, 'GetCamera');
    assert.equal(result.noLiveLink.octane, false);
    assert.equal(result.noLiveLink.render, true);
    assert.ok(result.noLiveLink.missing.includes('LiveLink/GetCamera'), JSON.stringify(result.noLiveLink.missing));
    assert.equal(result.noRenderEngine, false);
    assert.equal(result.channelRefused.render, false);
    assert.ok(result.channelRefused.missing.some((m) => /callbackChannel \(refused/.test(m)), JSON.stringify(result.channelRefused.missing));
    assert.equal(result.empty.octane, false);
    assert.equal(result.empty.generation, null);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('explorer in front of a non-Octane service', { timeout: 180000 }, () => {
  let gateway;
  let upstream;
  let browser;
  let gatewayUrl;
  let protoDir;

  before(async () => {
    // A gateway whose schema is one small service of someone else's, in front of a live
    // gRPC server (which, not being that service, answers UNIMPLEMENTED).
    protoDir = await mkdtemp(path.join(tmpdir(), 'octaneweb-greeter-'));
    await writeFile(path.join(protoDir, 'greeter.proto'), [
      'syntax = "proto3";',
      'package shop;',
      'message HelloRequest { string name = 1; int32 times = 2; }',
      'message HelloReply { string message = 1; }',
      'service Greeter { rpc SayHello(HelloRequest) returns (HelloReply); }',
      '',
    ].join('\n'));
    const upstreamPort = await freePort();
    upstream = await startCommand(['render-server', '--listen', `127.0.0.1:${upstreamPort}`, '--width', '64', '--height', '32'], () => portOpen(upstreamPort));
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}/`;
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${upstreamPort}`, '--proto', protoDir],
      async () => (await fetch(`${gatewayUrl}health`)).ok,
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await upstream?.stop();
    if (protoDir) await rm(protoDir, { recursive: true, force: true });
  });

  test('the schema says so, and toasts neither stack nor block the Call button (390x844)', async () => {
    const page = await openPage(browser, { viewport: { width: 390, height: 844 } });
    await page.goto(gatewayUrl);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.equal(await page.getAttribute('#explorer', 'data-octane'), 'false');
    const support = await page.evaluate(() => window.octaneweb.explorer.support);
    assert.equal(support.render, false);
    assert.equal(support.camera, false);
    assert.ok(support.missing.includes('octaneapi.ApiRenderEngineService/setOnNewImageCallback'), JSON.stringify(support.missing));
    // Explorer first: no dead viewport, no scene panels, the API tab open.
    await page.waitForFunction(() => document.body.dataset.layout === 'explorer');
    assert.ok(await page.isHidden('.viewport-column'));
    assert.ok(await page.isHidden('#tab-scene'));
    assert.equal(await page.getAttribute('#tab-api', 'aria-selected'), 'true');
    assert.match(await page.textContent('#explorer-note'), /no Octane render stream/);
    assert.match(await page.getAttribute('#explorer-note', 'title'), /setOnNewImageCallback/);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scrolling');
    await screenshot(page, 'explorer-non-octane-390x844');

    await page.click('#tab-api');
    await page.fill('#explorer-search', 'SayHello');
    await page.click('button[data-method="shop.Greeter/SayHello"]');
    // The Call button at the bottom of the window, where the toasts are.
    await page.evaluate(() => document.getElementById('explorer-call').scrollIntoView({ block: 'end' }));
    const counts = await page.evaluate(async () => {
      const { toast } = await import(new URL('js/dom.js', location.href).href);
      for (let i = 0; i < 5; i += 1) toast('Render stream: the same failure again and again', 'error', 20000);
      toast('Something else', 'info', 20000);
      const texts = [...document.querySelectorAll('#toasts .toast')].map((t) => t.querySelector('.toast-text').textContent);
      const repeated = [...document.querySelectorAll('#toasts .toast')].find((t) => t.textContent.startsWith('Render stream: the same'));
      return { texts, count: repeated?.dataset.count, badge: repeated?.querySelector('.toast-count').textContent };
    });
    assert.equal(counts.texts.filter((t) => t.startsWith('Render stream: the same')).length, 1, JSON.stringify(counts.texts));
    assert.equal(counts.count, '5', JSON.stringify(counts.texts));
    assert.equal(counts.badge, '×5');

    const overlap = await page.evaluate(() => {
      // Move the toasts so the newest lies over the middle of the Call button (the page may
      // be too short to scroll the button under them).
      const call = document.getElementById('explorer-call');
      call.scrollIntoView({ block: 'center' });
      const box = document.getElementById('toasts');
      const last = box.lastElementChild.getBoundingClientRect();
      const button = call.getBoundingClientRect();
      box.style.bottom = `${parseFloat(getComputedStyle(box).bottom) + (last.top + last.height / 2) - (button.top + button.height / 2)}px`;
      const x = button.left + button.width / 2;
      const y = button.top + button.height / 2;
      const covered = [...document.querySelectorAll('#toasts .toast')].some((t) => {
        const r = t.getBoundingClientRect();
        return x > r.left + 1 && x < r.right - 1 && y > r.top + 1 && y < r.bottom - 1;
      });
      return { covered, hit: document.elementFromPoint(x, y)?.id ?? null };
    });
    await screenshot(page, 'explorer-toasts-390x844');
    // A toast lies over the button, and the click reaches the button all the same.
    assert.ok(overlap.covered, 'the test places a toast over the Call button');
    assert.equal(overlap.hit, 'explorer-call', JSON.stringify(overlap));
    await page.click('#explorer-call');
    await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('explorer').dataset.call));
    assert.match(await page.textContent('#explorer-response'), /UNIMPLEMENTED|unimplemented/i);

    // The × dismisses a toast.
    const repeated = page.locator('#toasts .toast', { hasText: 'Render stream: the same' });
    await repeated.locator('.toast-close').click();
    assert.equal(await repeated.count(), 0);
    await page.context().close();
  });
});
