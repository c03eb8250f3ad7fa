// The gateway up but its render server down: the page says so, and when the render server
// starts, it recovers by itself (frames, camera and scene) without a reload. Real processes:
// `octaneweb serve` in front of a port where `octaneweb render-server` starts later.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  freePort, launchBrowser, openPage, portOpen, screenshot, startCommand, waitForFrames,
} from './harness.mjs';

describe('upstream', { timeout: 180000 }, () => {
  let gateway;
  let renderServer;
  let browser;
  let gatewayUrl;
  let upstreamPort;
  let protoDir;

  before(async () => {
    upstreamPort = await freePort();
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}/`;
    // An extra schema directory with one file that does not compile: the gateway skips it
    // with a warning the explorer shows.
    protoDir = await mkdtemp(path.join(tmpdir(), 'octaneweb-protos-'));
    await writeFile(path.join(protoDir, 'broken.proto'), 'syntax = "proto3";\npackage broken;\nmessage Broken { int32 a = 1, }\n');
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${upstreamPort}`,
        '--proto', protoDir, '--builtin-schema', 'gen2'],
      async () => (await fetch(`${gatewayUrl}health`)).ok,
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await renderServer?.stop();
    await gateway?.stop();
    if (protoDir) await rm(protoDir, { recursive: true, force: true });
  });

  test('a banner shows while the render server is down and the page recovers when it starts', async () => {
    const page = await openPage(browser);
    await page.goto(gatewayUrl);
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /cannot reach the render server/i);
    assert.equal(await page.getAttribute('#conn-indicator', 'data-state'), 'warn');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'error');
    await screenshot(page, 'upstream-down');

    renderServer = await startCommand(
      ['render-server', '--listen', `127.0.0.1:${upstreamPort}`, '--width', '256', '--height', '128'],
      () => portOpen(upstreamPort),
    );
    await page.waitForSelector('#banner', { state: 'hidden', timeout: 30000 });
    await waitForFrames(page, 0, 30000);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready', null, { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready', null, { timeout: 30000 });
    await screenshot(page, 'upstream-recovered');
    // The skipped schema file is reported in the explorer.
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.click('#explorer-warnings summary');
    assert.match(await page.textContent('#explorer-warnings'), /1 schema warning[\s\S]*broken\.proto:3/);
    // Failed calls while the render server was down log resource errors; nothing may throw.
    assert.deepEqual(page.problems.filter((p) => p.startsWith('exception')), []);
    await page.context().close();
  });
});
