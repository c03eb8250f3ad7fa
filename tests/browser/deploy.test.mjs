// Deployment shapes: the client served from another origin (pointed at the gateway with
// ?server=), and the gateway behind a reverse proxy under a path prefix. Both use real
// servers started here on loopback: a static file server for web/ (its origin allowed with
// --cors-origin, as a deployment must) and a small HTTP and WebSocket reverse proxy in front of
// the real demo that passes the client's Host through, as real reverse proxies do (nginx's
// `proxy_set_header Host $host`), so that the page is same-origin for the gateway. A second
// static server, not listed, shows what a refused page tells its user.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import {
  closeServer as close, launchBrowser, listenOnLoopback as listen, openPage, repoRoot, screenshot, startDemo, startProxy,
  waitForFrames,
} from './harness.mjs';

const CONTENT_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

/** Serves the files of web/ at `/static/` (nothing outside web/, no directory listings). */
function startStaticServer() {
  const webRoot = path.join(repoRoot, 'web');
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const relative = pathname.replace(/^\/static\//, '') || 'index.html';
    const file = path.normalize(path.join(webRoot, relative));
    if (!pathname.startsWith('/static/') || !file.startsWith(webRoot + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': CONTENT_TYPES[path.extname(file)] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return listen(server);
}

/** Forwards `/octane/*` to the gateway, without the prefix. */
function startPrefixProxy(gateway) {
  return startProxy(gateway, (url) => (url.startsWith('/octane/') ? url.slice('/octane'.length) : null));
}

describe('deploy', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let staticSite;
  let unlistedSite;
  let proxy;

  before(async () => {
    staticSite = await startStaticServer();
    unlistedSite = await startStaticServer();
    // The page's origin must be allowed: the gateway refuses pages of other origins, other
    // loopback ports included, unless listed.
    demo = await startDemo({ extraArgs: ['--cors-origin', new URL(staticSite.url).origin] });
    proxy = await startPrefixProxy(demo.url);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (proxy) await close(proxy);
    if (staticSite) await close(staticSite);
    if (unlistedSite) await close(unlistedSite);
    await demo?.stop();
  });

  /** Loads a page and checks that frames, the scene and a JSON call all work from it. */
  async function checkClient(pageUrl, name) {
    const page = await openPage(browser);
    await page.goto(pageUrl);
    await waitForFrames(page, 0);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.fill('#explorer-search', 'GetMeshes');
    await page.click('button[data-method="livelinkapi.LiveLinkService/GetMeshes"]');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.match(await page.textContent('#explorer-response'), /"meshes"/);
    await screenshot(page, name);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  }

  test('the client served from another origin reaches the gateway given by ?server=', async () => {
    const pageUrl = `${staticSite.url}static/index.html?server=${encodeURIComponent(demo.url)}`;
    await checkClient(pageUrl, 'other-origin');
  });

  test('served from an origin not listed with --cors-origin, the page says the gateway refuses it and why', async () => {
    const page = await openPage(browser);
    const origin = new URL(unlistedSite.url).origin;
    await page.goto(`${unlistedSite.url}static/index.html?server=${encodeURIComponent(demo.url)}`);
    await page.waitForSelector('#banner:not([hidden])');
    const banner = await page.textContent('#banner');
    assert.match(banner, /refuses this page/);
    assert.ok(banner.includes(`--cors-origin ${origin}`), banner);
    assert.equal(await page.getAttribute('#conn-indicator', 'data-state'), 'down');
    assert.match(await page.textContent('#conn-indicator'), /Refused/);
    assert.equal(await page.getAttribute('#viewport', 'data-frames'), '0');
    await screenshot(page, 'unlisted-origin');
    // Chromium logs each refused request (HTTP 403) as a console error; nothing else may fail.
    assert.deepEqual(page.problems.filter((p) => !/403|WebSocket handshake/.test(p)), []);
    await page.context().close();
  });

  test('the client works behind a reverse proxy under a path prefix', async () => {
    await checkClient(`${proxy.url}octane/`, 'path-prefix');
  });

  test('opened from file://, where Chromium refuses ES modules, the page says where to go', async () => {
    const page = await openPage(browser);
    const file = pathToFileURL(path.join(repoRoot, 'web', 'index.html'));
    file.searchParams.set('server', demo.url);
    await page.goto(file.href);
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /file:\/\//);
    assert.equal(await page.getAttribute('#banner a', 'href'), demo.url);
    await page.context().close();
  });
});
