// What an artist does in the browser, against the real demo: click an object in the render
// and see it selected, change its material in the inspector and see the render change
// there (and only there), undo it, drag a render region and see only it refine, and save,
// reset and open a project.

import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { callJson, frameCount, launchBrowser, openPage, screenshot, startDemo, waitForFrames } from './harness.mjs';

/** Mean RGB of the canvas over film pixels [x0, x1) × [y0, y1). */
function meanRgb(page, box) {
  return page.evaluate(({ x0, y0, x1, y1 }) => {
    const canvas = document.getElementById('frame-canvas');
    const { data } = canvas.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0);
    const sum = [0, 0, 0];
    for (let i = 0; i < data.length; i += 4) {
      sum[0] += data[i];
      sum[1] += data[i + 1];
      sum[2] += data[i + 2];
    }
    const n = data.length / 4;
    return sum.map((v) => v / n);
  }, box);
}

/** Every pixel of the canvas as an array (for before/after comparisons). */
function pixels(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('frame-canvas');
    return Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
  });
}

/** Client coordinates of a film pixel's centre on the page. */
function clientPoint(page, x, y) {
  return page.evaluate(({ x, y }) => {
    const rect = window.octaneweb.tools.imageRect();
    const canvas = document.getElementById('frame-canvas');
    return { x: rect.left + ((x + 0.5) / canvas.width) * rect.width, y: rect.top + ((y + 0.5) / canvas.height) * rect.height };
  }, { x, y });
}

/** The mesh names under a grid of film pixels, from the server's own pick. */
async function pickGrid(url, width, height, step) {
  const names = new Map();
  const hits = [];
  for (let y = step / 2; y < height; y += step) {
    for (let x = step / 2; x < width; x += step) {
      const answer = await callJson(url, 'ApiRenderEngine', 'pick', { x, y, intersectionsSize: 1 });
      const handle = answer.intersections?.node?.handle;
      if (!handle || handle === '0') continue;
      if (!names.has(handle)) names.set(handle, (await callJson(url, 'ApiItem', 'name', { objectPtr: answer.intersections.node })).result);
      hits.push({ x, y, handle, name: names.get(handle) });
    }
  }
  return hits;
}

/**
 * Waits, frame by frame, until the mean colour in `box` passes `accept`; resolves to it.
 * `what` names the step in the error when it never does.
 */
async function waitForMean(page, box, accept, what) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const mean = await meanRgb(page, box);
    if (accept(mean)) return mean;
    if (Date.now() > deadline) throw new Error(`${what}: the sphere shows ${mean}`);
    await waitForFrames(page, await frameCount(page)).catch(() => null);
  }
}

/**
 * Waits until channel `dominant` (0 red, 1 green, 2 blue) of the mean colour in `box` is 1.5
 * times each other channel: the render shows the colour an edit asked for.
 */
function waitForColour(page, box, dominant, what) {
  return waitForMean(page, box, (mean) => [0, 1, 2].every((c) => c === dominant || mean[dominant] > mean[c] * 1.5), what);
}

/** Waits until the frame on screen has at least `spp` samples per pixel (after a restart). */
async function waitForSamples(page, spp) {
  await page.waitForFunction((n) => Number(document.getElementById('viewport').dataset.spp) >= n, spp, { timeout: 30000 });
}

const distance = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

describe('the artist in the browser', { timeout: 240000 }, () => {
  let demo;
  let browser;
  let page;
  let projectRoot;
  let sphere;
  let outside;

  before(async () => {
    projectRoot = await mkdtemp(path.join(tmpdir(), 'octaneweb-projects-'));
    demo = await startDemo({ extraArgs: ['--project-root', projectRoot] });
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
    await page.goto(demo.url);
    await waitForFrames(page, 1);
    // Where the red sphere is, found with the server's pick: a small box inside it, and boxes
    // on other objects far from it (the render changes there only by noise).
    const hits = await pickGrid(demo.url, 256, 128, 4);
    const red = hits.filter((hit) => hit.name === 'Red sphere');
    assert.ok(red.length >= 4, `the red sphere covers too little of the image: ${red.length} hits`);
    const cx = red.reduce((s, h) => s + h.x, 0) / red.length;
    const cy = red.reduce((s, h) => s + h.y, 0) / red.length;
    sphere = { handle: red[0].handle, x: Math.round(cx), y: Math.round(cy), box: { x0: Math.round(cx) - 2, y0: Math.round(cy) - 2, x1: Math.round(cx) + 3, y1: Math.round(cy) + 3 } };
    const far = hits.filter((hit) => hit.name === 'Blue box');
    assert.ok(far.length >= 1, 'the blue box is not in the image');
    outside = { x0: far[0].x - 2, y0: far[0].y - 2, x1: far[0].x + 3, y1: far[0].y + 3 };
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
    if (projectRoot) await rm(projectRoot, { recursive: true, force: true });
  });

  test('clicking the sphere in the render selects it', async () => {
    const at = await clientPoint(page, sphere.x, sphere.y);
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction((handle) => {
      const inspector = document.getElementById('inspector');
      return inspector.dataset.state === 'ready' && inspector.dataset.handle === handle;
    }, sphere.handle);
    assert.match(await page.textContent('#inspector .inspector-head'), /Red sphere/);
    assert.equal(await page.getAttribute('#viewport', 'data-picked'), sphere.handle);
    // The mesh's material is open with its colour editor.
    await page.waitForSelector('#inspector .value-row.kind-colour input[type="color"]');
    await screenshot(page, 'artist-picked');
  });

  test('a colour edit in the inspector changes the sphere in the render, and undo brings it back', async () => {
    await waitForSamples(page, 8);
    const before = await meanRgb(page, sphere.box);
    const beforeOutside = await meanRgb(page, outside);
    assert.ok(before[0] > before[1] * 1.5, `the sphere is not red: ${before}`);
    await page.locator('#inspector .value-row.kind-colour input[type="color"]').first().fill('#10d020');
    // The render restarts with the new colour: wait until the sphere shows it.
    await waitForColour(page, sphere.box, 1, 'after the colour edit');
    await waitForSamples(page, 8);
    const server = await callJson(demo.url, 'ApiRenderEngine', 'pick', { x: sphere.x, y: sphere.y, intersectionsSize: 1 });
    assert.equal(server.intersections.node.handle, sphere.handle);
    const edited = await meanRgb(page, sphere.box);
    const editedOutside = await meanRgb(page, outside);
    assert.ok(edited[1] > edited[0] * 1.5, `the sphere is not green: ${edited}`);
    assert.ok(distance(beforeOutside, editedOutside) < 25, `the blue box changed too: ${beforeOutside} -> ${editedOutside}`);
    await screenshot(page, 'artist-colour-edited');

    // Undo with the keyboard (focus off the colour field, as after any click elsewhere).
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press('Control+z');
    await waitForColour(page, sphere.box, 0, 'after undo');
    const undone = await meanRgb(page, sphere.box);
    assert.ok(distance(before, undone) < 40, `undo did not restore the colour: ${before} -> ${undone}`);
    // The inspector shows the restored value too, and redo is offered.
    assert.equal(await page.locator('#inspector .value-row.kind-colour input[type="color"]').first().inputValue(), '#cc1a14');
    assert.equal(await page.isEnabled('#btn-redo'), true);
    await screenshot(page, 'artist-colour-undone');
  });

  test('a dragged render region refines only inside it', async () => {
    await page.click('#btn-region');
    assert.equal(await page.getAttribute('#btn-region', 'aria-pressed'), 'true');
    const region = { x0: 96, y0: 32, x1: 192, y1: 96 };
    const from = await clientPoint(page, region.x0, region.y0);
    const to = await clientPoint(page, region.x1 - 1, region.y1 - 1);
    await page.mouse.move(from.x - 2, from.y - 2);
    await page.mouse.down();
    await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 4 });
    await page.mouse.move(to.x + 2, to.y + 2, { steps: 4 });
    await page.mouse.up();
    await page.waitForFunction(() => document.getElementById('viewport').dataset.region !== '');
    const server = await callJson(demo.url, 'ApiRenderEngine', 'getRenderRegion', {});
    assert.equal(server.active, true);
    assert.ok(Math.abs(server.regionMin.x - region.x0) <= 2 && Math.abs(server.regionMin.y - region.y0) <= 2, JSON.stringify(server));
    assert.ok(Math.abs(server.regionMax.x - region.x1) <= 2 && Math.abs(server.regionMax.y - region.y1) <= 2, JSON.stringify(server));
    assert.equal(await page.getAttribute('#btn-region', 'aria-pressed'), 'false');
    assert.equal(await page.isEnabled('#btn-region-clear'), true);

    // Frames go on arriving; compare two of them some frames apart.
    const first = await waitForFrames(page, await page.evaluate(() => Number(document.getElementById('viewport').dataset.frames)) + 1);
    const a = await pixels(page);
    await waitForFrames(page, first + 3, 30000);
    const b = await pixels(page);
    const width = 256;
    let insideChanged = 0;
    let outsideChanged = 0;
    // JPEG blocks (16 px) that straddle the region's edge may differ either way.
    const margin = 16;
    for (let y = 0; y < 128; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const i = (y * width + x) * 4;
        const diff = Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
        const inside = x >= server.regionMin.x && x < server.regionMax.x && y >= server.regionMin.y && y < server.regionMax.y;
        const farOutside = x < server.regionMin.x - margin || x >= server.regionMax.x + margin || y < server.regionMin.y - margin || y >= server.regionMax.y + margin;
        if (inside && diff > 0) insideChanged += 1;
        if (farOutside && diff > 6) outsideChanged += 1;
      }
    }
    assert.ok(insideChanged > 200, `the region did not refine: ${insideChanged} pixels changed inside`);
    assert.equal(outsideChanged, 0, `${outsideChanged} pixels changed outside the region`);
    await screenshot(page, 'artist-region');

    await page.click('#btn-region-clear');
    await page.waitForFunction(() => document.getElementById('viewport').dataset.region === '');
    assert.equal((await callJson(demo.url, 'ApiRenderEngine', 'getRenderRegion', {})).active ?? false, false);
  });

  test('clay mode turns the red sphere grey and back', async () => {
    await page.selectOption('#sel-clay', 'CLAY_MODE_GREY');
    // Grey: no channel dominates inside the sphere any more.
    await waitForMean(page, sphere.box, ([r, g]) => r < g * 1.25 && r > g * 0.8, 'in clay mode');
    assert.equal((await callJson(demo.url, 'ApiRenderEngine', 'clayMode', {})).result, 'CLAY_MODE_GREY');
    await screenshot(page, 'artist-clay');
    await page.selectOption('#sel-clay', 'CLAY_MODE_NONE');
    await waitForColour(page, sphere.box, 0, 'after clay mode off');
    assert.equal((await callJson(demo.url, 'ApiRenderEngine', 'clayMode', {})).result, 'CLAY_MODE_NONE');
  });

  test('render settings: the kernel sample limit edited in the Render tab, shown in the statistics, undone', async () => {
    const limit = async () => Number((await callJson(demo.url, 'ApiRenderEngine', 'getRenderStatistics', {})).statistics.beautyMaxSamplesPerPixel);
    const original = await limit();
    await page.click('#tab-render');
    await page.waitForFunction(() => document.getElementById('render-settings').dataset.state === 'ready');
    const field = page.locator('#render-settings [data-node-type="NT_KERN_PATHTRACING"] .value-row[data-pin="P_MAX_SAMPLES"] input[type="number"]');
    assert.equal(Number(await field.inputValue()), original);
    await field.fill('500');
    await field.press('Tab');
    await page.waitForFunction(() => document.getElementById('stats').dataset.maxSpp === '500', null, { timeout: 10000 });
    assert.equal(await limit(), 500);
    assert.match(await page.textContent('#stats .progress-text'), /\/ 500 samples\/px/);
    await screenshot(page, 'artist-render-settings');
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press('Control+z');
    await page.waitForFunction((n) => document.getElementById('stats').dataset.maxSpp === String(n), original, { timeout: 10000 });
    assert.equal(await limit(), original);
    assert.equal(Number(await field.inputValue()), original);
    await page.click('#tab-scene');
  });

  test('save as, new and open bring the saved scene back', async () => {
    // A change worth saving: the red sphere's material becomes blue (through the inspector's own call route).
    await page.locator('#inspector .value-row.kind-colour input[type="color"]').first().fill('#1020e0');
    await waitForColour(page, sphere.box, 2, 'after the blue edit');

    await page.click('#btn-project');
    // A folder that does not exist: the server's reason shows and the dialog stays open.
    await page.fill('#project-path', 'studio/blue-sphere.json');
    await page.click('#btn-project-save-as');
    await page.waitForSelector('.toast.error:has-text("folder does not exist")');
    assert.equal(await page.evaluate(() => document.getElementById('dlg-project').open), true);
    await page.fill('#project-path', 'blue-sphere.json');
    await page.click('#btn-project-save-as');
    await page.waitForFunction(() => !document.getElementById('dlg-project').open);
    assert.ok((await stat(path.join(projectRoot, 'blue-sphere.json'))).size > 100);
    assert.equal((await callJson(demo.url, 'ApiProjectManager', 'getCurrentProject', {})).result, 'blue-sphere.json');

    // New: two presses (the first arms the button), and the built-in red sphere is back.
    await page.click('#btn-project');
    await page.click('#btn-project-new');
    await page.click('#btn-project-new');
    await page.waitForFunction(() => !document.getElementById('dlg-project').open);
    await waitForColour(page, sphere.box, 0, 'after New');
    // The scene changed under the panels: the selection is gone and the outliner reloaded.
    await page.waitForFunction(() => document.getElementById('inspector').dataset.state === 'empty');
    await page.waitForFunction(() => document.getElementById('outliner').dataset.state === 'ready');

    // Open from the recent list.
    await page.click('#btn-project');
    await page.click('#project-recent button:has-text("blue-sphere.json")');
    await page.waitForFunction(() => !document.getElementById('dlg-project').open);
    await waitForColour(page, sphere.box, 2, 'after Open');
    assert.equal(await page.getAttribute('body', 'data-project'), 'blue-sphere.json');
    await screenshot(page, 'artist-project-opened');
    // The refused save above is the one failed request (Chromium logs its 404).
    assert.deepEqual(page.problems.filter((p) => !p.includes('status of 404')), []);
  });
});
