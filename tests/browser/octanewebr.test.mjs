// octaneWebR's client, as it runs in a browser, against the real demo with no Node.js
// server. Its page calls its own origin (`/api/...`), which its Vite development server
// sends on to the gateway; here a small development server does the same: it serves a page
// and proxies `/api` (HTTP and the WebSocket upgrade) keeping every header, Host included,
// as Vite's proxy does, so those calls are same-origin for the gateway. From that page the
// test makes octaneWebR's calls in its shapes: the health check, its scene walk with
// `objectPtr`, and its callback WebSocket, whose image it draws as its viewport does (base64
// RGBA into a canvas); and its render toolbar's fetch of `/api/system/info` from the
// server's own address, another origin, allowed because the development server's origin is
// named with --cors-origin. From a second development server, whose origin is not named,
// that fetch is refused with the flag that would allow it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  closeServer, freePort, launchBrowser, openPage, screenshot, startDemo, startProxy,
} from './harness.mjs';

const SIZE = [128, 64];

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>octaneWebR-style page</title></head>
<body style="margin:0;background:#222"><canvas id="render" width="1" height="1"></canvas></body></html>`;

/** A development server: the page at `/`, `/api/*` proxied to `gateway`. */
function startDevServer(gateway) {
  return startProxy(
    gateway,
    (url) => (url.startsWith('/api/') ? url : null),
    (req, res) => {
      if (req.url === '/') res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
      else if (req.url === '/favicon.ico') res.writeHead(204).end();
      else res.writeHead(404).end();
    },
  );
}

describe('octaneWebR', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let devServer;
  let unlisted;
  let gateway;

  before(async () => {
    gateway = `http://127.0.0.1:${await freePort()}/`;
    devServer = await startDevServer(gateway);
    unlisted = await startDevServer(gateway);
    demo = await startDemo({
      listen: new URL(gateway).host,
      size: SIZE,
      extraArgs: ['--cors-origin', new URL(devServer.url).origin],
    });
    assert.equal(demo.url, gateway);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (devServer) await closeServer(devServer);
    if (unlisted) await closeServer(unlisted);
    await demo?.stop();
  });

  test('its calls, its system info fetch and its callback socket work from its development server', async () => {
    const page = await openPage(browser);
    await page.goto(devServer.url);
    const result = await page.evaluate(async ({ gatewayUrl }) => {
      const server = window.location.origin;
      // Its ObjectType numbers for the services walked here.
      const types = { ApiItem: 16, ApiNodeGraph: 20, ApiItemArray: 31 };
      const call = async (service, method, handle, params = {}) => {
        const body = handle === undefined ? {} : { objectPtr: { handle, type: types[service] } };
        const response = await fetch(`${server}/api/grpc/${service}/${method}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ ...body, ...params }),
        });
        if (!response.ok) throw new Error((await response.json()).error);
        return response.json();
      };
      const health = await (await fetch(`${server}/api/health`)).json();
      const root = (await call('ApiProjectManager', 'rootNodeGraph')).result.handle;
      const isGraph = (await call('ApiItem', 'isGraph', root)).result;
      const list = (await call('ApiNodeGraph', 'getOwnedItems', root)).list.handle;
      const size = (await call('ApiItemArray', 'size', list)).result;
      const names = [];
      for (let index = 0; index < size; index++) {
        const item = (await call('ApiItemArray', 'get', list, { index })).result.handle;
        names.push((await call('ApiItem', 'name', item)).result);
      }
      // Its render toolbar fetches this from the server's fixed address: another origin.
      const system = await (await fetch(`${gatewayUrl}api/system/info`)).json();

      // Its callback socket, and its viewport's drawing of the first image.
      const drawn = await new Promise((resolve, reject) => {
        const ws = new WebSocket(`${server.replace('http', 'ws')}/api/callbacks`);
        const timer = setTimeout(() => reject(new Error('no newImage within 20 s')), 20000);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe' }));
        ws.onerror = () => reject(new Error('callback socket failed'));
        ws.onmessage = (event) => {
          const message = JSON.parse(event.data);
          if (message.type !== 'newImage') return;
          const image = message.data.render_images.data[0];
          const text = atob(image.buffer.data);
          const bytes = new Uint8Array(text.length);
          for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
          const canvas = document.getElementById('render');
          canvas.width = image.size.x;
          canvas.height = image.size.y;
          const context = canvas.getContext('2d');
          const pixels = context.createImageData(image.size.x, image.size.y);
          pixels.data.set(bytes);
          context.putImageData(pixels, 0, 0);
          const shown = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let lit = 0;
          for (let i = 0; i < shown.length; i += 4) if (shown[i] + shown[i + 1] + shown[i + 2] > 30) lit++;
          clearTimeout(timer);
          ws.close();
          resolve({ width: image.size.x, height: image.size.y, bytes: bytes.length, lit, type: image.type });
        };
      });
      return { health, isGraph, names, system, drawn };
    }, { gatewayUrl: gateway });

    assert.equal(result.health.status, 'ok');
    assert.equal(result.health.octane, 'connected');
    assert.equal(result.isGraph, true);
    assert.ok(result.names.length > 0 && result.names.every((n) => typeof n === 'string' && n.length > 0), JSON.stringify(result.names));
    assert.ok(result.system.primitiveCount > 0, JSON.stringify(result.system));
    assert.equal(typeof result.system.gpuName, 'string');
    assert.deepEqual(
      [result.drawn.width, result.drawn.height, result.drawn.bytes, result.drawn.type],
      [SIZE[0], SIZE[1], SIZE[0] * SIZE[1] * 4, 0],
    );
    assert.ok(result.drawn.lit > (SIZE[0] * SIZE[1]) / 4, `the render is drawn, not blank: ${result.drawn.lit} lit pixels`);
    await screenshot(page, 'octanewebr-render');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('from a development server whose origin is not named, its cross-origin fetch is refused naming the flag', async () => {
    const page = await openPage(browser);
    await page.goto(unlisted.url);
    const origin = new URL(unlisted.url).origin;
    const result = await page.evaluate(async ({ gatewayUrl }) => {
      // Through its own server: same-origin for the gateway, as with Vite's proxy.
      const proxied = await fetch('/api/grpc/ApiProjectManager/rootNodeGraph', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      // Its render toolbar's fetch of the server's own address: another origin.
      const direct = await fetch(`${gatewayUrl}api/system/info`);
      return { proxied: proxied.status, direct: direct.status, body: await direct.json() };
    }, { gatewayUrl: gateway });
    assert.equal(result.proxied, 200);
    assert.equal(result.direct, 403);
    assert.ok(result.body.error.includes(`--cors-origin ${origin}`), result.body.error);
    // Chromium logs the refused request (HTTP 403) as a console error; nothing else may fail.
    assert.deepEqual(page.problems.filter((p) => !/403/.test(p)), []);
    await page.context().close();
  });
});
