// The API explorer as its own program: a failed call is not a failed schema (the recovery
// handler must not reload the schema for it), the schema tells whether Octane's render
// services are behind the gateway at all, and notifications stay out of the way of the
// explorer's buttons (repeats collapse, clicks go through to what lies under them).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ECHO_PROTO, startEchoServer } from './echo-server.mjs';
import { callJson, freePort, launchBrowser, openPage, portOpen, screenshot, startCommand, startDemo } from './harness.mjs';

/** The explorer's timing line; a loaded machine may take seconds. */
const TIMING = /^Timing: headers (\d+ ms|[\d.]+ s) · first message (\d+ ms|[\d.]+ s) · total (\d+ ms|[\d.]+ s)$/;

/** Runs a command the explorer shows (curl) with sh, as a user pasting it would. */
async function runShown(command) {
  const { stdout } = await promisify(execFile)('sh', ['-c', command], { timeout: 30000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** The explorer's table of response headers or trailers as an object. */
function metaTable(page, id) {
  return page.evaluate((tableId) => {
    const out = {};
    const dl = document.querySelector(`#${tableId} dl`);
    if (!dl) return out;
    for (const dt of dl.querySelectorAll('dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
    return out;
  }, id);
}

/** The status details the explorer shows: [type, JSON shown] each. */
function detailsShown(page) {
  return page.evaluate(() => [...document.querySelectorAll('#explorer-details .detail')]
    .map((detail) => [detail.querySelector('.method-path').textContent, JSON.parse(detail.querySelector('pre').textContent)]));
}

async function selectMethod(page, methodPath) {
  await page.fill('#explorer-search', methodPath.split('/').pop());
  await page.click(`button[data-method="${methodPath}"]`);
}

/** Adds a metadata row (opening the box first). */
async function addMetadata(page, name, value) {
  if ((await page.getAttribute('#explorer-metadata-box', 'open')) === null) await page.click('#explorer-metadata-box > summary');
  await page.click('#explorer-metadata-add');
  const row = page.locator('#explorer-metadata .metadata-row').last();
  await row.locator('.metadata-name').fill(name);
  await row.locator('.metadata-value').fill(value);
  return row;
}

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

  test("the .proto files' comments show beside methods, messages and fields", async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    // proto/octane/livelink.proto: the comment above StreamCamera, and the one above CameraState.
    await selectMethod(page, 'livelinkapi.LiveLinkService/StreamCamera');
    assert.equal(await page.textContent('#explorer-method-comment'), 'Client streaming: every CameraState is applied as it arrives; one reply at the end.');
    assert.match(await page.getAttribute('button[data-method="livelinkapi.LiveLinkService/StreamCamera"]', 'title'), /^Client streaming: every CameraState/);
    // Its line breaks inside a paragraph read as spaces.
    assert.equal(await page.textContent('#explorer-request-comment'), 'A camera. In SetCamera only the oneofs that are set change; fov is the vertical field of view in degrees.');
    // apirender.proto: a field's comment beside the field.
    await selectMethod(page, 'octaneapi.ApiRenderEngineService/pick');
    assert.match(await page.textContent('#explorer-form'), /Image-space pixel coordinates\./);
    await screenshot(page, 'explorer-comments');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('choosing a oneof member that is a message opens its editor at once', async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await selectMethod(page, 'livelinkapi.LiveLinkService/SetCamera');
    const position = page.locator('#explorer-form fieldset.oneof').first();
    await position.locator('select').selectOption('position');
    // No click on the member's summary: its x, y, z are there to type into.
    assert.equal(await position.locator('details.message').getAttribute('open'), '');
    await position.locator('[data-field="x"] input').fill('0.5', { timeout: 2000 });
    await position.locator('[data-field="z"] input').fill('6');
    await page.click('.editor-tabs [role="tab"]:has-text("JSON")');
    assert.deepEqual(JSON.parse(await page.inputValue('#explorer-json')), { position: { x: 0.5, z: 6 } });
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a deadline ends a long server stream with DEADLINE_EXCEEDED, in the page and in its curl command', async () => {
    const page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    // New images keep the callback stream busy; it never ends by itself.
    await callJson(demo.url, 'ApiRenderEngine', 'restartRendering');
    await selectMethod(page, 'octaneapi.StreamCallbackService/callbackChannel');
    await page.click('#explorer-metadata-box > summary');
    await page.fill('#explorer-deadline', '800');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error', null, { timeout: 20000 });
    assert.equal(await page.getAttribute('#explorer', 'data-status'), 'DEADLINE_EXCEEDED');
    assert.match(await page.textContent('#explorer-status'), /^Error · DEADLINE_EXCEEDED · \d/);
    assert.equal(await page.textContent('#explorer-grpc-status .code-name'), 'DEADLINE_EXCEEDED');
    // Connect asked for the JSON route's shape: proto names, defaults included.
    assert.match(await page.textContent('#explorer-response'), /"newImage": \{\s*"user_data": "0"\s*\}/);
    const timing = await page.textContent('#explorer-timing');
    const total = Number(timing.match(/total (\d+) ms/)?.[1] ?? timing.match(/total ([\d.]+) s/)?.[1] * 1000);
    assert.ok(total >= 700 && total < 5000, timing);
    assert.match(await page.textContent('#explorer-metadata-box > summary'), /deadline 800 ms/);

    // The same call from the curl box: a Connect stream that ends deadline_exceeded.
    const command = await page.textContent('#explorer-curl-text');
    assert.match(command, /Connect-Timeout-Ms: 800/);
    const output = await runShown(command);
    assert.match(output, /\{"error":\{"code":"deadline_exceeded"/, output.slice(-500));
    assert.match(output, /\{"newImage":\{"user_data":"0"\}\}/, output.slice(0, 500));
    await screenshot(page, 'explorer-deadline');
    assert.deepEqual(page.problems.filter((p) => !/status of 504/.test(p)), []);
    await page.context().close();
  });
});

describe('explorer: request metadata, response headers, trailers and status details', { timeout: 180000 }, () => {
  let echo;
  let gateway;
  let browser;
  let gatewayUrl;
  let protoDir;

  before(async () => {
    // The gateway in front of a gRPC server that answers with what it was sent.
    protoDir = await mkdtemp(path.join(tmpdir(), 'octaneweb-echo-'));
    await writeFile(path.join(protoDir, 'echo.proto'), ECHO_PROTO);
    echo = await startEchoServer();
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}/`;
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${echo.port}`, '--proto', protoDir],
      async () => (await fetch(`${gatewayUrl}health`)).ok,
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await echo?.stop();
    if (protoDir) await rm(protoDir, { recursive: true, force: true });
  });

  /** The calls of the echo service the server saw (the gateway also checks its health). */
  const echoCalls = () => echo.calls.filter((call) => call.path.startsWith('/echo.v1.Echo/'));

  async function openExplorer(viewport) {
    const page = await openPage(browser, { viewport });
    await page.goto(gatewayUrl);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    return page;
  }

  test('metadata rows reach the server; headers, trailers and timing come back (1024x700)', async () => {
    const page = await openExplorer({ width: 1024, height: 700 });
    await selectMethod(page, 'echo.v1.Echo/Say');
    await page.locator('#explorer-form [data-field="text"] input').fill('hello');

    // Names gRPC or the protocols reserve, and values that cannot be sent, are refused.
    const bad = await addMetadata(page, 'grpc-timeout', '1S');
    assert.equal(await bad.locator('.metadata-name').getAttribute('aria-invalid'), 'true');
    assert.match(await bad.locator('.metadata-name').getAttribute('title'), /grpc-\* names are reserved/);
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    assert.match(await page.textContent('#explorer-response'), /^INVALID_ARGUMENT: metadata grpc-timeout: grpc-\* names are reserved/);
    assert.equal(echoCalls().length, 0, 'nothing was sent');
    for (const [name, value, problem] of [[':path', '/x', /pseudo-headers/], ['content-type', 'text/plain', /reserved/], ['te', 'trailers', /reserved/], ['connection', 'close', /connection header/], ['bad name', 'x', /only letters, digits/], ['origin', 'https://elsewhere', /browser does not let/], ['sec-fetch-mode', 'cors', /browser does not let/], ['x-data-bin', 'not base64!', /base64/], ['x-text', 'ünïcode', /printable ASCII/]]) {
      await bad.locator('.metadata-name').fill(name);
      await bad.locator('.metadata-value').fill(value);
      const field = /base64|ASCII/.test(String(problem)) ? '.metadata-value' : '.metadata-name';
      assert.match(await bad.locator(field).getAttribute('title'), problem, name);
    }
    await bad.locator('button').click();
    // A deadline past what the page's timers can wait for is refused too.
    await page.fill('#explorer-deadline', '3000000000');
    assert.equal(await page.getAttribute('#explorer-deadline', 'aria-invalid'), 'true');
    await page.fill('#explorer-deadline', '');
    await addMetadata(page, 'X-Tenant', 'blue');
    await addMetadata(page, 'x-blob-bin', 'AAEC');

    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.deepEqual(JSON.parse(await page.textContent('#explorer-response')), { text: 'hello' });
    // The server saw the metadata (names lower-cased, -bin values as base64)...
    const seen = echoCalls().at(-1);
    assert.equal(seen.path, '/echo.v1.Echo/Say');
    assert.equal(seen.headers['x-tenant'], 'blue');
    assert.equal(seen.headers['x-blob-bin'], 'AAEC');
    // ...and its answer shows: headers, trailers, status, timing.
    const headers = await metaTable(page, 'explorer-headers');
    assert.equal(headers['echo-x-tenant'], 'blue');
    assert.equal(headers['echo-x-blob-bin'], 'AAEC');
    assert.equal(headers['x-call-id'], seen.headers['x-call-id'], 'the gateway echoes the call id the explorer sent');
    // The gateway's span of the call (W3C trace context), as the upstream received it.
    assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.equal(headers.traceparent, seen.headers.traceparent, 'the traceparent shown is the one the upstream got');
    assert.deepEqual(Object.keys(headers).sort(), ['echo-x-blob-bin', 'echo-x-tenant', 'traceparent', 'x-call-id'], 'transport headers are left out');
    assert.deepEqual(await metaTable(page, 'explorer-trailers'), { 'x-echo-messages': '1' });
    assert.equal(await page.textContent('#explorer-grpc-status .code-name'), 'OK');
    assert.match(await page.textContent('#explorer-timing'), TIMING);
    await screenshot(page, 'explorer-headers-1024x700');

    // The curl box makes the same call: same answer, and the metadata reaches the server.
    const command = await page.textContent('#explorer-curl-text');
    assert.match(command, /-H 'x-tenant: blue'/);
    const before = echoCalls().length;
    assert.deepEqual(JSON.parse(await runShown(command)), { text: 'hello' });
    assert.equal(echoCalls().length, before + 1);
    assert.equal(echoCalls().at(-1).headers['x-tenant'], 'blue');
    assert.deepEqual(page.problems.filter((p) => !/status of 400/.test(p)), []);
    await page.context().close();
  });

  test('a refusal shows its code, message and decoded status details', async () => {
    const page = await openExplorer({ width: 1280, height: 900 });
    await selectMethod(page, 'echo.v1.Echo/Say');
    await page.locator('#explorer-form [data-field="text"] input').fill('please fail');
    await page.locator('#explorer-form [data-field="fail"] input').check();
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    assert.match(await page.textContent('#explorer-status'), /^Error · HTTP 400 · FAILED_PRECONDITION · (\d+ ms|[\d.]+ s)$/);
    assert.equal(await page.textContent('#explorer-grpc-status .code-name'), 'FAILED_PRECONDITION');
    assert.equal(await page.textContent('#explorer-grpc-status .status-message'), 'refused: the request asked to fail');
    // The Connect error's details, as the gateway decoded them into the specification's
    // `debug` form: one of the schema's types (packed repeated field included) and a standard
    // google.rpc one the schema does not describe.
    const details = await detailsShown(page);
    assert.deepEqual(details, [
      ['echo.v1.SayRequest', { text: 'please fail', fail: true, codes: [7, 300] }],
      ['google.rpc.ErrorInfo', { reason: 'ASKED_TO_FAIL', domain: 'echo.test', metadata: {} }],
    ]);
    assert.deepEqual(await metaTable(page, 'explorer-trailers'), { 'x-echo-messages': '1' });
    await screenshot(page, 'explorer-status-details');
    assert.deepEqual(page.problems.filter((p) => !/status of 400/.test(p)), []);
    await page.context().close();
  });

  test('a client stream offers no curl, but an rpc.js snippet; metadata and details travel over /ws too', async () => {
    const page = await openExplorer({ width: 1280, height: 900 });
    await selectMethod(page, 'echo.v1.Echo/Collect');
    assert.ok(await page.isHidden('#explorer-curl-box'), 'no curl box');
    assert.ok(await page.isHidden('#explorer-curl'), 'no Copy curl button');
    assert.ok(await page.isVisible('#explorer-snippet'), 'a Copy rpc.js snippet button');
    await addMetadata(page, 'x-tenant', 'green');
    await page.locator('#explorer-form [data-field="text"] input').fill('one');
    await page.click('#explorer-snippet-box > summary');
    await page.waitForFunction(() => document.getElementById('explorer-snippet-text').textContent.includes('"x-tenant":"green"'));
    const snippet = await page.textContent('#explorer-snippet-text');
    assert.match(snippet, /rpc\.clientStream\("echo\.v1\.Echo\/Collect", \{"metadata":\{"x-tenant":"green"\}\}\)/);

    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.click('#explorer-send');
    await page.locator('#explorer-form [data-field="text"] input').fill('two');
    await page.click('#explorer-send');
    await page.click('#explorer-end');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.match(await page.textContent('#explorer-response'), /"text": "one two"/);
    assert.equal(echoCalls().at(-1).headers['x-tenant'], 'green');
    assert.equal((await metaTable(page, 'explorer-headers'))['echo-x-tenant'], 'green');
    assert.deepEqual(await metaTable(page, 'explorer-trailers'), { 'x-echo-messages': '2' });
    assert.match(await page.textContent('#explorer-timing'), TIMING);

    // The snippet runs as shown: the same call from a module script.
    const before = echoCalls().length;
    const logged = page.waitForEvent('console', { predicate: (message) => message.type() === 'log', timeout: 10000 });
    await page.addScriptTag({ type: 'module', content: snippet });
    const answer = await logged;
    assert.deepEqual(await answer.args()[0].jsonValue(), { text: 'one' });
    assert.equal(echoCalls().length, before + 1);
    assert.equal(echoCalls().at(-1).headers['x-tenant'], 'green');

    // A refusal over /ws: the gateway decodes the details through the schema.
    await page.locator('#explorer-form [data-field="text"] input').fill('stop');
    await page.locator('#explorer-form [data-field="fail"] input').check();
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.click('#explorer-send');
    await page.click('#explorer-end');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'error');
    assert.equal(await page.textContent('#explorer-grpc-status .code-name'), 'FAILED_PRECONDITION');
    const details = await detailsShown(page);
    assert.deepEqual(details.map(([type]) => type), ['echo.v1.SayRequest', 'google.rpc.ErrorInfo']);
    assert.equal(details[0][1].text, 'stop');
    assert.deepEqual(details[0][1].codes, [7, 300]);
    assert.equal(details[1][1].reason, 'ASKED_TO_FAIL');
    await screenshot(page, 'explorer-client-stream');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  for (const [width, height] of [[390, 844], [1920, 1080]]) {
    test(`the explorer with an answer fits ${width}x${height}`, async () => {
      const page = await openExplorer({ width, height });
      await selectMethod(page, 'echo.v1.Echo/Say');
      await page.locator('#explorer-form [data-field="text"] input').fill('a longer text to say back, to see how the answer wraps');
      await addMetadata(page, 'x-request-id', 'd3b07384-d113-4ec6-a7e9-2f1e0c7b5a11');
      await page.fill('#explorer-deadline', '5000');
      await page.click('#explorer-call');
      await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
      await page.click('#explorer-curl-box > summary');
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scrolling');
      await screenshot(page, `explorer-answer-${width}x${height}`);
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }
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
