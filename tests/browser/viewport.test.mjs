// The viewport against the real demo: a clean page load, a real rendered image, camera
// control confirmed by GetCamera, and pause / continue of the render engine.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  callJson, canvasStats, frameCount, launchBrowser, openPage, screenshot, startDemo, waitForFrames,
} from './harness.mjs';

describe('viewport', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let page;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    page = await openPage(browser);
    await page.goto(demo.url);
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('the page loads with no console error and streams over the WebSocket', async () => {
    await waitForFrames(page, 0);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
    assert.match(await page.textContent('#mode-indicator'), /WebSocket/);
    assert.equal(await page.getAttribute('#conn-indicator', 'data-state'), 'ok');
    assert.equal(await page.isHidden('#banner'), true);
    await screenshot(page, 'page-loaded');
    assert.deepEqual(page.problems, []);
  });

  test('every control has a name for screen readers', async () => {
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea, [role="tab"]')]
      .filter((el) => el.offsetParent !== null || el.closest('dialog'))
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim()))
      .map((el) => el.outerHTML.slice(0, 120)));
    assert.deepEqual(unnamed, []);
  });

  test('the viewport shows a non-blank rendered image at the render size', async () => {
    await waitForFrames(page, 1);
    const stats = await canvasStats(page);
    assert.equal(stats.width, 256);
    assert.equal(stats.height, 128);
    assert.ok(stats.std > 5, `image has almost no contrast: ${JSON.stringify(stats)}`);
    assert.ok(stats.colours > 20, `image has too few colours: ${JSON.stringify(stats)}`);
    // The HUD reflects real frames.
    assert.notEqual(await page.textContent('#hud-spp'), '–');
    assert.match(await page.textContent('#hud-size'), /256×128/);
    await screenshot(page, 'viewport-image');
  });

  test('dragging orbits the camera (GetCamera confirms) and the image changes', async () => {
    const before_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const sentBefore = Number(await page.getAttribute('#viewport', 'data-camera-sent') || 0);
    const imageBefore = await canvasStats(page);
    const box = await page.locator('#viewport').boundingBox();
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    await page.mouse.move(x, y);
    await page.mouse.down();
    for (let i = 1; i <= 8; i += 1) await page.mouse.move(x + i * 15, y + i * 3);
    await page.mouse.up();
    await page.waitForFunction((n) => {
      const el = document.getElementById('viewport');
      return Number(el.dataset.cameraSent) > n && el.dataset.cameraBusy === '0';
    }, sentBefore);
    const after_ = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const moved = Math.hypot(
      (after_.position?.x ?? 0) - (before_.position?.x ?? 0),
      (after_.position?.y ?? 0) - (before_.position?.y ?? 0),
      (after_.position?.z ?? 0) - (before_.position?.z ?? 0),
    );
    assert.ok(moved > 0.01, `camera position did not move: ${JSON.stringify({ before_, after_ })}`);
    // An orbit keeps the target.
    assert.deepEqual(after_.target ?? {}, before_.target ?? {});
    await page.waitForFunction((hash) => {
      const canvas = document.getElementById('frame-canvas');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let h = 2166136261;
      for (let i = 0; i < data.length; i += 4) h = Math.imul(h ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619) >>> 0;
      return h !== hash;
    }, imageBefore.hash, { timeout: 20000 });
    await screenshot(page, 'camera-orbited');
  });

  test('right-drag pans (the target moves with the camera) and the wheel zooms', async () => {
    const sub = (a = {}, b = {}) => ['x', 'y', 'z'].map((k) => (a[k] ?? 0) - (b[k] ?? 0));
    const waitSent = async (n) => page.waitForFunction((count) => {
      const el = document.getElementById('viewport');
      return Number(el.dataset.cameraSent) > count && el.dataset.cameraBusy === '0';
    }, n);
    const sentCount = async () => Number(await page.getAttribute('#viewport', 'data-camera-sent') || 0);
    const start = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const box = await page.locator('#viewport').boundingBox();
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    let sent = await sentCount();
    await page.mouse.move(x, y);
    await page.mouse.down({ button: 'right' });
    for (let i = 1; i <= 6; i += 1) await page.mouse.move(x + i * 12, y - i * 6);
    await page.mouse.up({ button: 'right' });
    await waitSent(sent);
    const panned = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const targetMoved = Math.hypot(...sub(panned.target, start.target));
    assert.ok(targetMoved > 0.01, `pan did not move the target: ${JSON.stringify({ start, panned })}`);
    sub(panned.position, panned.target).forEach((v, i) => {
      assert.ok(Math.abs(v - sub(start.position, start.target)[i]) < 1e-3, 'pan changed the view direction');
    });
    sent = await sentCount();
    await page.mouse.move(x, y);
    await page.mouse.wheel(0, -400);
    await waitSent(sent);
    const zoomed = await callJson(demo.url, 'LiveLink', 'GetCamera');
    const distance = (c) => Math.hypot(...sub(c.position, c.target));
    assert.ok(distance(zoomed) < distance(panned) * 0.8, `wheel did not zoom in: ${distance(panned)} -> ${distance(zoomed)}`);
    await page.click('#btn-reset-camera');
  });

  test('camera math: orbit keeps distance and target, pan keeps the view, dolly scales the distance', async () => {
    const r = await page.evaluate(async () => {
      const m = await import(new URL('js/camera.js', location.href).href);
      const camera = { position: { x: 0, y: 1, z: 5 }, target: { x: 0, y: 1, z: 0 }, up: { x: 0, y: 1, z: 0 }, fov: 45 };
      const dist = (a, b) => Math.hypot(a.x - b.x, a.y - b.y, a.z - b.z);
      const orbited = m.orbit(camera, 0.7, -0.3);
      const panned = m.pan(camera, 30, -10, 200);
      const dollied = m.dolly(camera, 0.5);
      // Orbiting far past the pole stops just short of it instead of flipping over.
      const overPole = m.orbit(camera, 0, -10);
      const offset = { x: overPole.position.x, y: overPole.position.y - 1, z: overPole.position.z };
      return {
        orbitDistance: dist(orbited.position, orbited.target),
        orbitTarget: orbited.target,
        orbitMoved: dist(orbited.position, camera.position),
        panOffset: [panned.position.x - panned.target.x, panned.position.y - panned.target.y, panned.position.z - panned.target.z],
        panMoved: dist(panned.target, camera.target),
        dollyDistance: dist(dollied.position, dollied.target),
        poleAngle: Math.acos(offset.y / Math.hypot(offset.x, offset.y, offset.z)),
      };
    });
    assert.ok(Math.abs(r.orbitDistance - 5) < 1e-9, `orbit distance ${r.orbitDistance}`);
    assert.deepEqual(r.orbitTarget, { x: 0, y: 1, z: 0 });
    assert.ok(r.orbitMoved > 1);
    r.panOffset.forEach((v, i) => assert.ok(Math.abs(v - [0, 0, 5][i]) < 1e-9, `pan offset ${r.panOffset}`));
    assert.ok(r.panMoved > 0.1);
    assert.ok(Math.abs(r.dollyDistance - 2.5) < 1e-9);
    assert.ok(r.poleAngle > 0.01 && r.poleAngle < 0.1, `pole angle ${r.poleAngle}`);
  });

  test('camera sender: one call in flight, the newest state wins, the rate is bounded', async () => {
    const slow = await page.evaluate(async () => {
      const { CoalescingSender } = await import(new URL('js/camera.js', location.href).href);
      const sent = [];
      let inFlight = 0;
      let maxInFlight = 0;
      const sender = new CoalescingSender(async (value) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        sent.push(value);
        await new Promise((resolve) => setTimeout(resolve, 150));
        inFlight -= 1;
      }, 120);
      for (let i = 1; i <= 100; i += 1) {
        sender.push(i);
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      while (sender.inFlight || sender.pending !== undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      return { sent, maxInFlight };
    });
    assert.equal(slow.maxInFlight, 1);
    assert.equal(slow.sent.at(-1), 100, 'the newest state is sent last');
    assert.ok(slow.sent.length < 10, `a slow server got ${slow.sent.length} calls for 100 moves`);
    assert.deepEqual([...slow.sent].sort((a, b) => a - b), slow.sent, 'states never go backwards');

    const fast = await page.evaluate(async () => {
      const { CoalescingSender } = await import(new URL('js/camera.js', location.href).href);
      const sent = [];
      const sender = new CoalescingSender(async (value) => { sent.push(value); }, 10);
      const started = performance.now();
      let i = 0;
      while (performance.now() - started < 1000) {
        i += 1;
        sender.push(i);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      while (sender.inFlight || sender.pending !== undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      return { sent, pushed: i };
    });
    assert.ok(fast.sent.length <= 12, `10/s allowed ${fast.sent.length} calls in about a second`);
    assert.equal(fast.sent.at(-1), fast.pushed);
  });

  test('reset view returns the camera to where it started', async () => {
    const sent = Number(await page.getAttribute('#viewport', 'data-camera-sent'));
    await page.click('#btn-reset-camera');
    await page.waitForFunction((n) => {
      const el = document.getElementById('viewport');
      return Number(el.dataset.cameraSent) > n && el.dataset.cameraBusy === '0';
    }, sent);
    const home = await page.evaluate(() => window.octaneweb.camera.home);
    const now = await callJson(demo.url, 'LiveLink', 'GetCamera');
    for (const axis of ['x', 'y', 'z']) {
      assert.ok(Math.abs((now.position?.[axis] ?? 0) - home.position[axis]) < 1e-3, `position.${axis}`);
    }
  });

  test('the stream switches between PNG, raw RGBA and JPEG frames', async () => {
    for (const encoding of ['png', 'raw', 'jpeg']) {
      await page.selectOption('#sel-encoding', encoding);
      await page.waitForFunction((e) => document.getElementById('viewport').dataset.encoding === e, encoding);
      const stats = await canvasStats(page);
      assert.ok(stats.std > 5, `${encoding} frame is blank: ${JSON.stringify(stats)}`);
    }
    assert.equal(await page.isDisabled('#rng-quality'), false, 'quality applies to JPEG');
  });

  test('1:1 shows the frame pixel for pixel and fit scales it into the viewport', async () => {
    await page.click('#btn-actual');
    const actual = await page.locator('#frame-canvas').boundingBox();
    assert.equal(Math.round(actual.width), 256);
    assert.equal(Math.round(actual.height), 128);
    assert.equal(await page.getAttribute('#btn-actual', 'aria-pressed'), 'true');
    await page.click('#btn-fit');
    const fit = await page.locator('#frame-canvas').boundingBox();
    assert.ok(fit.width > 256, `fit width ${fit.width}`);
  });

  test('Save PNG downloads the current frame as a lossless PNG from the gateway', async () => {
    const [download, fetched] = await Promise.all([
      page.waitForEvent('download'),
      page.waitForResponse((response) => response.url().includes('/render/frame.png')),
      page.click('#btn-save'),
    ]);
    assert.equal(fetched.status(), 200, 'the PNG comes from /render/frame.png, not the canvas');
    assert.match(download.suggestedFilename(), /^octaneweb-frame-\d+\.png$/);
    const bytes = await readFile(await download.path());
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(bytes.length > 1000, `PNG of ${bytes.length} bytes`);
  });

  test('pause stops frames and continue resumes them', async () => {
    await page.click('#btn-restart');
    const start = await frameCount(page);
    await waitForFrames(page, start + 1);
    await page.click('#btn-pause');
    await page.waitForFunction(() => document.body.dataset.render === 'paused');
    // Frames rendered before the pause may still be on their way; let them land.
    let settled = await frameCount(page);
    for (let tries = 0; tries < 10; tries += 1) {
      await page.waitForTimeout(800);
      const now = await frameCount(page);
      if (now === settled) break;
      settled = now;
    }
    await page.waitForTimeout(1500);
    assert.equal(await frameCount(page), settled, 'frames kept arriving while paused');
    await screenshot(page, 'paused');
    await page.click('#btn-continue');
    await page.waitForFunction(() => document.body.dataset.render === 'rendering');
    await waitForFrames(page, settled);
    assert.deepEqual(page.problems, []);
  });

  test('a hidden page pauses its WebSocket stream and resumes when shown again', async () => {
    const setHidden = (hidden) => page.evaluate((value) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => value });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
    await page.click('#btn-restart');
    await waitForFrames(page, await frameCount(page));
    await setHidden(true);
    let settled = await frameCount(page);
    for (let tries = 0; tries < 10; tries += 1) {
      await page.waitForTimeout(800);
      const now = await frameCount(page);
      if (now === settled) break;
      settled = now;
    }
    await page.waitForTimeout(1000);
    assert.equal(await frameCount(page), settled, 'frames kept arriving while hidden');
    await setHidden(false);
    await waitForFrames(page, settled);
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws');
  });

  test('stop ends rendering and restart starts it again', async () => {
    await page.click('#btn-stop');
    await page.waitForFunction(() => document.body.dataset.render === 'stopped');
    let settled = await frameCount(page);
    for (let tries = 0; tries < 10; tries += 1) {
      await page.waitForTimeout(800);
      const now = await frameCount(page);
      if (now === settled) break;
      settled = now;
    }
    await page.waitForTimeout(1500);
    assert.equal(await frameCount(page), settled, 'frames kept arriving after stop');
    await page.click('#btn-restart');
    await page.waitForFunction(() => document.body.dataset.render === 'rendering');
    await waitForFrames(page, settled);
  });

  test('the layout fits a tablet without horizontal scrolling', async () => {
    const tablet = await openPage(browser, { viewport: { width: 820, height: 1180 } });
    await tablet.goto(demo.url);
    await waitForFrames(tablet, 0);
    const layout = await tablet.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      viewport: document.getElementById('viewport').getBoundingClientRect().width,
      side: document.querySelector('.side').getBoundingClientRect().width,
    }));
    assert.ok(layout.overflow <= 0, `page scrolls sideways by ${layout.overflow}px`);
    assert.ok(layout.viewport > 700 && layout.side > 700, `stacked layout expected: ${JSON.stringify(layout)}`);
    await screenshot(tablet, 'tablet');
    assert.deepEqual(tablet.problems, []);
    await tablet.context().close();
  });

  test('on a touch screen, spreading two fingers zooms the camera in', async () => {
    const tablet = await openPage(browser, { viewport: { width: 1024, height: 768 }, hasTouch: true });
    await tablet.goto(demo.url);
    await waitForFrames(tablet, 0);
    await tablet.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready');
    const distance = (c) => Math.hypot(
      (c.position?.x ?? 0) - (c.target?.x ?? 0), (c.position?.y ?? 0) - (c.target?.y ?? 0), (c.position?.z ?? 0) - (c.target?.z ?? 0));
    const before_ = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    const sent = Number(await tablet.getAttribute('#viewport', 'data-camera-sent') || 0);
    const box = await tablet.locator('#viewport').boundingBox();
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    const cdp = await tablet.context().newCDPSession(tablet);
    const fingers = (spread) => [{ x: cx - spread, y: cy, id: 1 }, { x: cx + spread, y: cy, id: 2 }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: fingers(40) });
    for (let spread = 50; spread <= 160; spread += 10) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: fingers(spread) });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await tablet.waitForFunction((n) => {
      const el = document.getElementById('viewport');
      return Number(el.dataset.cameraSent) > n && el.dataset.cameraBusy === '0';
    }, sent);
    const after_ = distance(await callJson(demo.url, 'LiveLink', 'GetCamera'));
    assert.ok(after_ < before_ * 0.6, `pinch did not zoom in: ${before_} -> ${after_}`);
    assert.deepEqual(tablet.problems, []);
    await tablet.context().close();
    // Leave the shared camera as the other tests expect it.
    await page.click('#btn-reset-camera');
  });

  test('keyboard shortcuts: ? opens the help overlay listing them, H toggles the HUD', async () => {
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('?');
    await page.waitForSelector('#dlg-help[open]');
    const rows = await page.locator('#shortcut-list tr').count();
    assert.ok(rows >= 10, `help lists ${rows} shortcuts`);
    await screenshot(page, 'help-overlay');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#dlg-help:not([open])', { state: 'attached' });
    // A listed shortcut works: H hides and shows the statistics overlay.
    await page.keyboard.press('h');
    assert.equal(await page.isHidden('#hud'), true);
    await page.keyboard.press('h');
    assert.equal(await page.isVisible('#hud'), true);
  });

  test('Space toggles: it pauses a running render and continues a paused one, whoever paused it', async () => {
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.waitForFunction(() => document.body.dataset.render === 'rendering');
    await page.keyboard.press(' ');
    await page.waitForFunction(() => document.body.dataset.render === 'paused');
    assert.match(await page.textContent('#render-state'), /Paused/);
    await page.keyboard.press(' ');
    await page.waitForFunction(() => document.body.dataset.render === 'rendering');
    // Paused with the mouse: Space continues (it does not pause again).
    await page.click('#btn-pause');
    await page.waitForFunction(() => document.body.dataset.render === 'paused');
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press(' ');
    await page.waitForFunction(() => document.body.dataset.render === 'rendering');
    assert.deepEqual(page.problems, []);
  });
});
