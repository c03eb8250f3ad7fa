// Camera control against the real demo: the wheel zooms in gentle steps, and Reset view
// returns to the camera of the scene as it was loaded, not to the camera at page load.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { callJson, launchBrowser, openPage, startDemo, waitForFrames } from './harness.mjs';

const sub = (a = {}, b = {}) => ['x', 'y', 'z'].map((k) => (a[k] ?? 0) - (b[k] ?? 0));
const distance = (c) => Math.hypot(...sub(c.position, c.target));
const gap = (a, b) => Math.hypot(...sub(a, b));

describe('camera', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let page;
  let projectRoot;

  /** Resolves once every camera state queued after `sent` calls went out and finished. */
  const settled = (sent) => page.waitForFunction((n) => {
    const el = document.getElementById('viewport');
    return Number(el.dataset.cameraSent) > n && el.dataset.cameraBusy === '0';
  }, sent);
  const sentCount = async () => Number(await page.getAttribute('#viewport', 'data-camera-sent') || 0);
  const center = async () => {
    const box = await page.locator('#viewport').boundingBox();
    return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  };

  before(async () => {
    projectRoot = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-camera-test-'));
    demo = await startDemo({ extraArgs: ['--project-root', projectRoot] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
    rmSync(projectRoot, { recursive: true, force: true });
  });

  test('one wheel notch moves 10% closer, five notches about 41%, one notch out 11% back', async () => {
    page = await openPage(browser);
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    const { x, y } = await center();
    await page.mouse.move(x, y);
    const start = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));

    let sent = await sentCount();
    await page.mouse.wheel(0, -100);
    await settled(sent);
    const one = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(Math.abs(one / start - 0.9) < 1e-3, `one notch: ${start} -> ${one}`);

    for (let i = 0; i < 4; i += 1) {
      sent = await sentCount();
      await page.mouse.wheel(0, -100);
      await settled(sent);
    }
    const five = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(Math.abs(five / start - 0.9 ** 5) < 1e-3, `five notches: ${start} -> ${five}`);

    sent = await sentCount();
    await page.mouse.wheel(0, 100);
    await settled(sent);
    const out = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(Math.abs(out / five - 1 / 0.9) < 1e-3, `one notch out: ${five} -> ${out}`);

    // A trackpad's small deltas zoom in proportion (ten deltas of 10 make one notch), and
    // a flung wheel is capped at three notches per event.
    sent = await sentCount();
    for (let i = 0; i < 10; i += 1) await page.mouse.wheel(0, -10);
    await settled(sent);
    const smooth = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(Math.abs(smooth / out - 0.9) < 1e-3, `ten small deltas: ${out} -> ${smooth}`);
    sent = await sentCount();
    await page.mouse.wheel(0, -5000);
    await settled(sent);
    const flung = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(Math.abs(flung / smooth - 0.9 ** 3) < 1e-3, `flung wheel: ${smooth} -> ${flung}`);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("Reset view returns to the loaded scene's camera, not the camera at page load", async () => {
    // Another session left the camera somewhere else before this page loaded.
    await callJson(demo.url, 'LiveLink', 'SetCamera', { position: { x: 4, y: 3, z: 6 }, target: { x: 0, y: 0.5, z: 0 }, up: { x: 0, y: 1, z: 0 }, fov: 40 });
    page = await openPage(browser);
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    const atPageLoad = await callJson(demo.url, 'LiveLink', 'GetCamera');

    // A new scene: the built-in project as it starts, with its own camera.
    const homeBefore = await page.getAttribute('#viewport', 'data-camera-home');
    await callJson(demo.url, 'ApiProjectManager', 'resetProject');
    const sceneCamera = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(gap(sceneCamera.position, atPageLoad.position) > 0.5, 'the scene camera differs from the one at page load');
    await page.waitForFunction((before_) => document.getElementById('viewport').dataset.cameraHome !== before_, homeBefore);

    // Orbit away from it, then reset.
    const { x, y } = await center();
    let sent = await sentCount();
    await page.mouse.move(x, y);
    await page.mouse.down();
    for (let i = 1; i <= 8; i += 1) await page.mouse.move(x + i * 15, y + i * 4);
    await page.mouse.up();
    await settled(sent);
    const dragged = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(gap(dragged.position, sceneCamera.position) > 0.1, 'the drag moved the camera');

    sent = await sentCount();
    await page.click('#btn-reset-camera');
    await settled(sent);
    const reset = await callJson(demo.url, 'LiveLink', 'GetCamera');
    assert.ok(gap(reset.position, sceneCamera.position) < 1e-3, `reset went to ${JSON.stringify(reset.position)}, the scene's camera is ${JSON.stringify(sceneCamera.position)}`);
    assert.ok(gap(reset.target, sceneCamera.target) < 1e-3, 'reset restores the target');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});
