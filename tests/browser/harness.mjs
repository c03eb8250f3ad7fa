// Shared set-up for the browser tests: start the real `octaneweb demo` on an ephemeral port,
// launch Debian's Chromium through playwright-core, open pages that record console errors,
// and keep screenshots under test-artifacts/browser/.

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const artifactsDir = path.join(repoRoot, 'test-artifacts', 'browser');

const STARTUP_TIMEOUT_MS = 60000;

/**
 * The environment of the programs the tests start: quiet logs, and no OCTANEWEB_TOKEN from
 * the developer's shell (a test that wants a token passes it explicitly).
 */
function childEnv() {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' };
  delete env.OCTANEWEB_TOKEN;
  return env;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts another `octaneweb` command (e.g. `serve`, `render-server`) and resolves once
 * `ready()` says it is up; resolves to `{process, output(), stop()}`.
 */
export async function startCommand(args, ready, timeoutMs = STARTUP_TIMEOUT_MS) {
  const bin = process.env.OCTANEWEB_BIN || path.join(repoRoot, 'target', 'debug', 'octaneweb');
  return startBinary(bin, args, ready, timeoutMs);
}

/**
 * The example telemetry server's binary: TELEMETRY_BIN, else `telemetry-server` next to
 * OCTANEWEB_BIN (one cargo target directory), else target/debug/telemetry-server.
 */
export function telemetryBin() {
  if (process.env.TELEMETRY_BIN) return process.env.TELEMETRY_BIN;
  if (process.env.OCTANEWEB_BIN) return path.join(path.dirname(process.env.OCTANEWEB_BIN), 'telemetry-server');
  return path.join(repoRoot, 'target', 'debug', 'telemetry-server');
}

/** Like startCommand, for any program (e.g. the example telemetry server). */
export async function startBinary(bin, args, ready, timeoutMs = STARTUP_TIMEOUT_MS) {
  const child = spawn(bin, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const spawnFailed = new Promise((resolve) => child.once('error', (err) => resolve(err)));
  let output = '';
  const remember = (chunk) => {
    output = (output + chunk.toString()).slice(-32 * 1024);
  };
  child.stdout.on('data', remember);
  child.stderr.on('data', remember);
  const started = Date.now();
  const name = `${path.basename(bin)} ${args[0] ?? ''}`.trim();
  while (!(await ready().catch(() => false))) {
    const failure = await Promise.race([spawnFailed, Promise.resolve(null)]);
    if (failure) throw new Error(`cannot start ${bin}: ${failure.message}`);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited:\n${output}`);
    if (Date.now() - started > timeoutMs) {
      child.kill('SIGKILL');
      throw new Error(`${name} not ready within ${timeoutMs / 1000} s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { process: child, output: () => output, stop: () => stopProcess(child) };
}

/** Resolves true once something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The URL `octaneweb demo` / `serve` print to open: `http(s)://127.0.0.1:PORT/`, with
 * `?token=TOKEN` when the gateway requires a token. Matched only once the line is complete.
 */
const PRINTED_URL = /(https?:\/\/127\.0\.0\.1:\d+\/)(?:\?token=([A-Za-z0-9._~-]+))?\s/;

/**
 * Starts `octaneweb demo` and resolves to `{url, openUrl, token, process, output, stop()}`
 * once it prints the URL it serves: `url` is the gateway's base URL (`http://` or `https://`,
 * without the token), `openUrl` the printed one (with `?token=` when the gateway has one),
 * `token` the token or null. `size` is the render's [width, height] (small by default, so
 * tests stay fast). Rejects with the process output if it exits or takes too long.
 */
export function startDemo({ listen = '127.0.0.1:0', extraArgs = [], size = [256, 128] } = {}) {
  const bin = process.env.OCTANEWEB_BIN || path.join(repoRoot, 'target', 'debug', 'octaneweb');
  const args = ['demo', '--listen', listen, '--width', String(size[0]), '--height', String(size[1]), '--no-open', ...extraArgs];
  const child = spawn(bin, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv(),
  });
  let output = '';
  const remember = (chunk) => {
    output += chunk.toString();
    // Bounded: only the tail matters for a failure message.
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024);
  };
  child.stderr.on('data', remember);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`octaneweb demo printed no URL within ${STARTUP_TIMEOUT_MS / 1000} s:\n${output}`));
    }, STARTUP_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${err.message} (set OCTANEWEB_BIN or run cargo build -p octaneweb)`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`octaneweb demo exited (${code ?? signal}) before printing its URL:\n${output}`));
    });
    child.stdout.on('data', (chunk) => {
      remember(chunk);
      const match = output.match(PRINTED_URL);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        url: match[1],
        openUrl: match[2] ? `${match[1]}?token=${match[2]}` : match[1],
        token: match[2] ?? null,
        process: child,
        output: () => output,
        stop: () => stopProcess(child),
      });
    });
  });
}

function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Launches headless Chromium from the system (never a downloaded build). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Opens a page in a fresh context (so localStorage starts empty) and records console errors
 * and uncaught exceptions in `page.problems`. `contextOptions` go to `browser.newContext`
 * (e.g. `{ ignoreHTTPSErrors: true }` for a gateway with a self-signed certificate).
 */
export async function openPage(browser, { viewport = { width: 1440, height: 900 }, initScript, hasTouch = false, contextOptions = {} } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, hasTouch, ...contextOptions });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => page.problems.push(`exception: ${error.message}`));
  if (initScript) await page.addInitScript(initScript);
  return page;
}

/** Saves a full-page screenshot as test-artifacts/browser/<name>.png and returns its path. */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * The gateway's `octaneweb_calls_total` for a protocol ('json', 'websocket', ...) and a full
 * method name (`livelinkapi.LiveLinkService/StreamCamera`), summed over codes or for one code.
 */
export async function callCount(baseUrl, protocol, method, code) {
  const text = await (await fetch(new URL('metrics', baseUrl))).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('octaneweb_calls_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.protocol !== protocol || labels.method !== method) continue;
    if (code && labels.code !== code) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return total;
}

/** Calls a method through the gateway's JSON route from the test process itself. */
export async function callJson(baseUrl, service, method, body = {}) {
  const response = await fetch(new URL(`${service}/${method}`, baseUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!json.success) throw new Error(`${service}/${method}: HTTP ${response.status} ${json.error}`);
  return json.data;
}

/** Waits until the viewport has drawn more than `count` frames; resolves to the new count. */
export async function waitForFrames(page, count, timeout = 20000) {
  await page.waitForFunction((n) => Number(document.getElementById('viewport').dataset.frames) > n, count, { timeout });
  return frameCount(page);
}

export async function frameCount(page) {
  return page.evaluate(() => Number(document.getElementById('viewport').dataset.frames));
}

/**
 * Statistics of the pixels on the viewport canvas: mean luminance, its standard deviation,
 * the number of distinct (quantised) colours, and a hash for change detection.
 */
export function canvasStats(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('frame-canvas');
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let sum = 0;
    let sumSq = 0;
    let hash = 2166136261;
    const colours = new Set();
    const pixels = data.length / 4;
    for (let i = 0; i < data.length; i += 4) {
      const y = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
      sum += y;
      sumSq += y * y;
      colours.add(((data[i] >> 4) << 8) | ((data[i + 1] >> 4) << 4) | (data[i + 2] >> 4));
      hash = Math.imul(hash ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619) >>> 0;
    }
    const mean = sum / pixels;
    return { width: canvas.width, height: canvas.height, mean, std: Math.sqrt(Math.max(0, sumSq / pixels - mean * mean)), colours: colours.size, hash };
  });
}

/** A WebSocket stand-in whose connections always fail, installed before the page's scripts run. */
export const BLOCK_WEBSOCKET = `(() => {
  class BlockedWebSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = String(url);
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.dispatchEvent(new Event('error'));
        this.dispatchEvent(new CloseEvent('close', { code: 1006, reason: 'blocked by test' }));
      }, 20);
    }
    send() { throw new DOMException('blocked', 'InvalidStateError'); }
    close() { this.readyState = 3; }
  }
  Object.assign(BlockedWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = BlockedWebSocket;
  window.__websocketBlocked = true;
})();`;

/** Listens on a free loopback port; resolves to `{server, url}` (`url` ends in `/`). */
export function listenOnLoopback(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}

/** Closes a server of `listenOnLoopback`, with its open connections. */
export function closeServer({ server }) {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * An HTTP and WebSocket proxy in front of `gateway` on a free loopback port, keeping every
 * request header (Host and Origin included) as reverse proxies and Vite's development proxy
 * do. `route(url)` gives the gateway path for a request path, or null for requests the proxy
 * answers itself with `other(req, res)` (404 unless given). Resolves to `{server, url}`.
 */
export function startProxy(gateway, route, other = (req, res) => res.writeHead(404).end()) {
  const port = Number(new URL(gateway).port);
  const server = http.createServer((req, res) => {
    const upstreamPath = route(req.url);
    if (upstreamPath === null) {
      other(req, res);
      return;
    }
    const upstream = http.request({
      host: '127.0.0.1', port, path: upstreamPath, method: req.method, headers: req.headers,
    }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const upstreamPath = route(req.url);
    if (upstreamPath === null) {
      socket.destroy();
      return;
    }
    const upstream = net.connect(port, '127.0.0.1', () => {
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`).join('\r\n');
      upstream.write(`${req.method} ${upstreamPath} HTTP/1.1\r\n${headers}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  return listenOnLoopback(server);
}
