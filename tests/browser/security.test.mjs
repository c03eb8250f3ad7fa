// The gateway's front door, seen from a real browser: a token brought once with ?token= (kept
// in an HttpOnly cookie, dropped from the address), TLS with a self-signed certificate (the
// page, its WebSockets and its calls over https / wss), and a method policy (--deny) shown in
// the API explorer and enforced on calls the page makes itself.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { callCount, launchBrowser, openPage, screenshot, startDemo, waitForFrames } from './harness.mjs';

/** Opens the API explorer and calls LiveLink/GetCamera from it; resolves to the response. */
async function explorerGetCamera(page) {
  await page.click('#tab-api');
  await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
  await page.fill('#explorer-search', 'GetCamera');
  await page.click('button[data-method="livelinkapi.LiveLinkService/GetCamera"]');
  await page.click('#explorer-call');
  await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('explorer').dataset.call));
  assert.match(await page.textContent('#explorer-status'), /^OK/, await page.textContent('#explorer-response'));
  return JSON.parse(await page.textContent('#explorer-response'));
}

/** POSTs `body` to a gateway path from the page (its cookies, its origin); resolves to {status, json}. */
function fetchFromPage(page, route, body = {}) {
  return page.evaluate(async ([r, b]) => {
    const response = await fetch(r, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = { text };
    }
    return { status: response.status, json };
  }, [route, body]);
}

describe('token', { timeout: 180000 }, () => {
  const token = `octaneweb-test-${randomBytes(12).toString('hex')}`;
  let dir;
  let demo;
  let browser;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-token-'));
    const file = path.join(dir, 'token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    demo = await startDemo({ extraArgs: ['--token-file', file] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the printed URL carries the token from the file', () => {
    assert.equal(demo.token, token);
    assert.equal(demo.openUrl, `${demo.url}?token=${token}`);
  });

  test('opened with ?token=, the page drops the token from its address, streams frames and calls', async () => {
    const page = await openPage(browser);
    const redirects = [];
    page.on('response', (response) => {
      if (response.status() === 303) redirects.push(response.headers().location);
    });
    const response = await page.goto(demo.openUrl);
    assert.equal(response.status(), 200);
    assert.deepEqual(redirects, ['/'], 'one 303 to the same address without the token');
    assert.equal(page.url(), demo.url, 'the token left the address bar');

    await waitForFrames(page, 0);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws', 'frames came over the WebSocket, with the cookie');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    const camera = await explorerGetCamera(page);
    assert.ok(camera.position, JSON.stringify(camera));

    // The cookie: HttpOnly (scripts cannot read it), SameSite=Strict, and not the token itself.
    const cookies = await page.context().cookies(demo.url);
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].sameSite, 'Strict');
    assert.ok(!cookies[0].value.includes(token), 'the cookie holds a digest, not the token');
    assert.equal(await page.evaluate(() => document.cookie), '');
    // fetch from the page carries it too.
    const fetched = await fetchFromPage(page, 'LiveLink/GetCamera');
    assert.equal(fetched.status, 200, JSON.stringify(fetched));
    assert.equal(fetched.json.success, true);

    await screenshot(page, 'security-token');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a browser without the token gets the 401 page; a wrong token does not help', async () => {
    const page = await openPage(browser);
    const response = await page.goto(demo.url);
    assert.equal(response.status(), 401);
    assert.match(response.headers()['content-type'], /text\/html/);
    assert.match(await page.textContent('h1'), /token/i);
    assert.match(await page.textContent('body'), /\?token=/);
    assert.equal(await page.locator('#viewport').count(), 0, 'no web client');

    const wrong = await page.goto(`${demo.url}?token=${'x'.repeat(token.length)}`);
    assert.equal(wrong.status(), 401);
    assert.deepEqual(await page.context().cookies(demo.url), []);
    await page.context().close();
  });

  test('scripts: Authorization: Bearer passes, no token is a JSON 401, probes stay open', async () => {
    const call = (headers) => fetch(new URL('LiveLink/GetCamera', demo.url), { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: '{}' });
    const ok = await call({ Authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).success, true);
    const refused = await call({});
    assert.equal(refused.status, 401);
    const body = await refused.json();
    assert.equal(body.success, false);
    assert.equal(body.code, 'UNAUTHENTICATED');
    assert.equal((await fetch(new URL('healthz', demo.url))).status, 200);
  });
});

describe('TLS', { timeout: 180000 }, () => {
  let dir;
  let demo;
  let browser;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'pipe' });
    demo = await startDemo({ extraArgs: ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the printed URL is https', () => {
    assert.match(demo.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(demo.token, null);
  });

  test('the web client over https: frames over wss, the outliner and an explorer call', async () => {
    const page = await openPage(browser, { contextOptions: { ignoreHTTPSErrors: true } });
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    const response = await page.goto(demo.url);
    assert.equal(response.status(), 200);
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    await waitForFrames(page, 2);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    assert.ok(sockets.length > 0 && sockets.every((url) => url.startsWith('wss://127.0.0.1:')), `WebSockets: ${JSON.stringify(sockets)}`);
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    const camera = await explorerGetCamera(page);
    assert.ok(camera.position, JSON.stringify(camera));
    await screenshot(page, 'security-tls');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('method policy (--deny)', { timeout: 180000 }, () => {
  const SET_CAMERA = 'livelinkapi.LiveLinkService/SetCamera';
  const GET_CAMERA = 'livelinkapi.LiveLinkService/GetCamera';
  let demo;
  let browser;

  before(async () => {
    demo = await startDemo({ extraArgs: ['--deny', 'LiveLink/Set*'] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('/schema marks the refused methods and lists the policy', async () => {
    const schema = await (await fetch(new URL('schema', demo.url))).json();
    assert.deepEqual(schema.policy, { allow: [], deny: ['LiveLink/Set*'] });
    const livelink = schema.services.find((s) => s.full_name === 'livelinkapi.LiveLinkService');
    const refused = livelink.methods.filter((m) => m.refused).map((m) => m.name).sort();
    assert.ok(refused.includes('SetCamera'), JSON.stringify(refused));
    assert.ok(refused.every((name) => name.startsWith('Set')), JSON.stringify(refused));
    assert.ok(!livelink.methods.find((m) => m.name === 'GetCamera').refused);
  });

  test('the explorer marks SetCamera refused and will not call it; the gateway refuses it anyway', async () => {
    const page = await openPage(browser, { viewport: { width: 1400, height: 900 } });
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    assert.ok(Number(await page.getAttribute('#explorer', 'data-refused')) >= 1);
    assert.match(await page.textContent('#explorer-policy'), /refused.*deny LiveLink\/Set\*/);

    await page.fill('#explorer-search', 'livelinkservice/');
    const setButton = page.locator(`button[data-method="${SET_CAMERA}"]`);
    assert.equal(await setButton.getAttribute('data-refused'), 'true');
    assert.match(await setButton.getAttribute('title'), /refused by this gateway's --allow\/--deny policy/);
    assert.equal(await setButton.locator('.badge.refused .lock').count(), 1, 'a lock mark');
    assert.equal(await page.locator(`button[data-method="${GET_CAMERA}"]`).getAttribute('data-refused'), null);

    await setButton.click();
    assert.equal(await page.getAttribute('#explorer', 'data-selected-refused'), 'true');
    assert.ok(await page.isDisabled('#explorer-call'), 'Call is disabled');
    assert.match(await page.getAttribute('#explorer-call', 'title'), /--allow\/--deny/);
    assert.ok(await page.isVisible('#explorer-refused'));
    assert.match(await page.textContent('#explorer-refused'), /Refused by this gateway's --allow\/--deny policy \(deny LiveLink\/Set\*\).*PERMISSION_DENIED/);
    // Ctrl+Enter does not call it either.
    await page.locator('#explorer-form select').first().focus();
    await page.keyboard.press('Control+Enter');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await callCount(demo.url, 'json', SET_CAMERA), 0, 'no SetCamera reached the gateway');
    await screenshot(page, 'security-policy-1400x900');
    assert.deepEqual(page.problems, []);

    // A page that tries anyway is refused by the gateway (Chromium logs the 403 to the console).
    const refused = await fetchFromPage(page, 'LiveLink/SetCamera', { fov: 40 });
    assert.equal(refused.status, 403, JSON.stringify(refused));
    assert.equal(refused.json.success, false);
    assert.equal(refused.json.code, 'PERMISSION_DENIED');
    assert.match(refused.json.error, /SetCamera/);
    page.problems = page.problems.filter((problem) => !/status of 403/.test(problem));

    // Another method: the note goes and Call comes back.
    await page.click(`button[data-method="${GET_CAMERA}"]`);
    assert.ok(await page.isEnabled('#explorer-call'));
    assert.ok(await page.isHidden('#explorer-refused'));
    assert.equal(await page.getAttribute('#explorer-call', 'title'), 'Call (Ctrl+Enter)');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');

    // Grouped by service (no filter), the service shows how many of its methods are refused.
    await page.fill('#explorer-search', '');
    const group = page.locator('details.service[data-service="livelinkapi.LiveLinkService"]');
    assert.ok(await group.locator('summary .refused-count').isVisible());
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  for (const [width, height] of [[1000, 800], [390, 844]]) {
    test(`the refused method at ${width}x${height}`, async () => {
      const page = await openPage(browser, { viewport: { width, height } });
      await page.goto(demo.url);
      await waitForFrames(page, 0);
      await page.click('#tab-api');
      await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
      await page.fill('#explorer-search', 'camera');
      await page.click(`button[data-method="${SET_CAMERA}"]`);
      assert.ok(await page.isDisabled('#explorer-call'));
      await page.locator('#explorer-refused').scrollIntoViewIfNeeded();
      assert.ok(await page.isVisible('#explorer-refused'));
      // The note fits the panel: no horizontal overflow of the page.
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth + 1), 'no horizontal scrolling');
      await screenshot(page, `security-policy-${width}x${height}`);
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }
});
