// Frames sized to the viewer (issue 17), from the browser's side: the frame header's region
// and full size, what the viewport asks the gateway for (its display size, following resizes
// and the pixel ratio; at 1:1 the visible crop; the same as query parameters when polling),
// decoding that never queues more than one undrawn frame nor blocks the page on 4K pixels,
// and, against a gateway that serves views (docs/render-stream.md), scaled and cropped frames
// on the wire, precise refusals of bad sizes and crops, and picks mapped to full-frame pixels.
//
// The tests marked "(gateway serving views)" need the server side of issue 17; the others run
// against any gateway: a WebSocket route in front of /render/ws records what the page sends
// and, for a gateway that predates views, tells the page views are served and keeps the view
// messages (which that gateway would refuse) from it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { callJson, launchBrowser, openPage, screenshot, startDemo, waitForFrames } from './harness.mjs';
import { emulateViews } from './view-emulator.mjs';

/**
 * OCTANEWEB_VIEW_EMULATION=1 puts view-emulator.mjs between the page and a gateway that does
 * not serve views yet, to check the client's side of the WebSocket tests against the
 * contract; the HTTP tests are skipped then. Without it, everything talks to the gateway.
 */
const EMULATED = process.env.OCTANEWEB_VIEW_EMULATION === '1';

const FULL = [1280, 720];
const CROP_GRID = 64;

/** Resolves once `condition()` is truthy (checked every 20 ms); fails naming `what` after `timeout`. */
async function waitUntil(condition, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Routes the page's /render/ws through the test: every text message the page sends is kept
 * in `sent`, and `servesViews` says whether the gateway's hello announced views.
 */
async function recordViewRequests(page) {
  const record = { sent: [], servesViews: null, views: () => record.sent.filter((m) => m.type === 'config' && 'width' in m) };
  if (EMULATED) {
    await emulateViews(page, record);
    return record;
  }
  await page.routeWebSocket('**/render/ws', (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      if (typeof message === 'string') {
        const parsed = JSON.parse(message);
        record.sent.push(parsed);
        // A gateway without views would refuse the whole message for its unknown fields.
        if (record.servesViews === false && ('width' in parsed || 'crop' in parsed)) return;
      }
      server.send(message);
    });
    server.onMessage((message) => {
      if (typeof message === 'string') {
        const parsed = JSON.parse(message);
        if (parsed.type === 'hello') {
          record.servesViews = 'width' in parsed;
          if (!record.servesViews) message = JSON.stringify({ ...parsed, width: 0, height: 0, crop: null });
        }
      }
      ws.send(message);
    });
  });
  return record;
}

/** The viewport's inner box in CSS pixels and the page's device pixel ratio. */
function viewportBox(page) {
  return page.evaluate(() => {
    const el = document.getElementById('viewport');
    return { width: el.clientWidth, height: el.clientHeight, ratio: window.devicePixelRatio };
  });
}

/** The part of the full frame that shows through the viewport at 1:1, in full-frame pixels. */
function visibleRegion(page) {
  return page.evaluate(() => {
    const el = document.getElementById('viewport');
    const box = el.getBoundingClientRect();
    const canvas = document.getElementById('frame-canvas').getBoundingClientRect();
    const full = { w: Number(el.dataset.fullWidth), h: Number(el.dataset.fullHeight) };
    const left = Math.max(box.left + el.clientLeft, canvas.left);
    const top = Math.max(box.top + el.clientTop, canvas.top);
    const right = Math.min(box.left + el.clientLeft + el.clientWidth, canvas.right);
    const bottom = Math.min(box.top + el.clientTop + el.clientHeight, canvas.bottom);
    const sx = full.w / canvas.width;
    const sy = full.h / canvas.height;
    return { x0: (left - canvas.left) * sx, y0: (top - canvas.top) * sy, x1: (right - canvas.left) * sx, y1: (bottom - canvas.top) * sy };
  });
}

/** A crop covers the visible region, reaching at most one grid step beyond it, inside the frame. */
function assertCropCovers(crop, visible, full) {
  assert.ok(Array.isArray(crop) && crop.length === 4 && crop.every(Number.isInteger), `crop ${JSON.stringify(crop)}`);
  const [x, y, w, h] = crop;
  assert.ok(w >= 1 && h >= 1 && x >= 0 && y >= 0 && x + w <= full[0] && y + h <= full[1], `crop ${crop} outside ${full}`);
  assert.ok(x <= visible.x0 + 1e-6 && y <= visible.y0 + 1e-6 && x + w >= visible.x1 - 1e-6 && y + h >= visible.y1 - 1e-6,
    `crop ${crop} does not cover the visible ${JSON.stringify(visible)}`);
  assert.ok(visible.x0 - x < CROP_GRID && visible.y0 - y < CROP_GRID
    && x + w - visible.x1 < CROP_GRID && y + h - visible.y1 < CROP_GRID, `crop ${crop} far beyond the visible ${JSON.stringify(visible)}`);
}

/** Width and height of a baseline or progressive JPEG, from its SOF marker. */
function jpegSize(bytes) {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) throw new Error(`JPEG marker expected at ${i}`);
    const marker = bytes[i + 1];
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { width: (bytes[i + 7] << 8) | bytes[i + 8], height: (bytes[i + 5] << 8) | bytes[i + 6] };
    }
    i += 2 + length;
  }
  throw new Error('no SOF marker in the JPEG');
}

/**
 * Keeps the page's `(resolution: ...)` media queries in `window.resolutionQueries`. Headless
 * Chromium changes devicePixelRatio under CDP emulation without the change event a real zoom
 * or a move to another screen dispatches; the test dispatches it on the page's own query.
 */
const KEEP_RESOLUTION_QUERIES = `(() => {
  window.resolutionQueries = [];
  const matchMedia = window.matchMedia.bind(window);
  window.matchMedia = (query) => {
    const list = matchMedia(query);
    if (query.includes('resolution')) window.resolutionQueries.push(list);
    return list;
  };
})();`;

describe('frames sized to the viewer', { timeout: 600000 }, () => {
  let demo;
  let browser;
  let page;
  let record;

  before(async () => {
    demo = await startDemo({ size: FULL });
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: { width: 1280, height: 860 }, initScript: KEEP_RESOLUTION_QUERIES });
    record = await recordViewRequests(page);
    await page.goto(demo.url);
    await waitForFrames(page, 0);
    // Views travel on the WebSocket: a page that fell back to SSE would ask for nothing.
    assert.equal(await page.getAttribute('#viewport', 'data-mode'), 'ws', await page.getAttribute('#viewport', 'data-last-failure'));
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('frame.js: an 80-byte header gives the region and full size; 56- and 48-byte headers mean the whole frame', async () => {
    const r = await page.evaluate(async () => {
      const m = await import(new URL('js/frame.js', location.href).href);
      /** A raw frame message with a header of `length` bytes (view fields when it has room). */
      const message = (length, width, height, view) => {
        const buffer = new ArrayBuffer(length + width * height * 4);
        const v = new DataView(buffer);
        [...'OWRF'].forEach((c, i) => v.setUint8(i, c.charCodeAt(0)));
        v.setUint8(4, 1);
        v.setUint8(5, 0);
        v.setUint16(6, length, true);
        v.setBigUint64(8, 7n, true);
        v.setUint32(16, width, true);
        v.setUint32(20, height, true);
        if (length >= 56) v.setBigUint64(48, 3n, true);
        if (view) [...view.region, ...view.full].forEach((n, i) => v.setUint32(56 + 4 * i, n, true));
        return buffer;
      };
      const pick = (f) => ({ width: f.width, height: f.height, region: f.region, fullWidth: f.fullWidth, fullHeight: f.fullHeight, changeLevel: f.changeLevel, bytes: f.payload.data.length });
      const errorOf = (fn) => {
        try {
          fn();
          return null;
        } catch (err) {
          return `${err.name}: ${err.message}`;
        }
      };
      const scaled = m.decodeBinaryFrame(message(80, 64, 36, { region: [0, 0, 3840, 2160], full: [3840, 2160] }));
      const cropped = m.decodeBinaryFrame(message(80, 40, 20, { region: [1000, 500, 40, 20], full: [3840, 2160] }));
      return {
        scaled: pick(scaled),
        cropped: pick(cropped),
        v56: pick(m.decodeBinaryFrame(message(56, 8, 4))),
        v48: pick(m.decodeBinaryFrame(message(48, 8, 4))),
        centre: m.imageToFrame(scaled, 32, 18),
        inCrop: m.imageToFrame(cropped, 10, 5.5),
        outside: errorOf(() => m.decodeBinaryFrame(message(80, 8, 4, { region: [3800, 0, 64, 36], full: [3840, 2160] }))),
        empty: errorOf(() => m.decodeBinaryFrame(message(80, 8, 4, { region: [0, 0, 0, 36], full: [3840, 2160] }))),
        noFull: errorOf(() => m.decodeBinaryFrame(message(80, 8, 4, { region: [0, 0, 8, 4], full: [0, 0] }))),
        headers: m.viewFromHeaders(640, 360, '0,0,3840,2160', '3840x2160'),
        noHeaders: m.viewFromHeaders(640, 360, null, null),
        badRegion: errorOf(() => m.viewFromHeaders(640, 360, '0,0,3840', '3840x2160')),
        badFull: errorOf(() => m.viewFromHeaders(640, 360, '0,0,3840,2160', '3840*2160')),
        headersOutside: errorOf(() => m.viewFromHeaders(640, 360, '100,0,3840,2160', '3840x2160')),
      };
    });
    assert.deepEqual(r.scaled, { width: 64, height: 36, region: { x: 0, y: 0, width: 3840, height: 2160 }, fullWidth: 3840, fullHeight: 2160, changeLevel: 3, bytes: 64 * 36 * 4 });
    assert.deepEqual(r.cropped.region, { x: 1000, y: 500, width: 40, height: 20 });
    for (const old of [r.v56, r.v48]) {
      assert.deepEqual(old.region, { x: 0, y: 0, width: 8, height: 4 });
      assert.equal(old.fullWidth, 8);
      assert.equal(old.fullHeight, 4);
      assert.equal(old.bytes, 8 * 4 * 4, 'the payload starts after the header, whatever its length');
    }
    assert.equal(r.v56.changeLevel, 3);
    assert.equal(r.v48.changeLevel, null);
    // full_x = region_x + image_x * region_w / image_w
    assert.deepEqual(r.centre, { x: 1920, y: 1080 });
    assert.deepEqual(r.inCrop, { x: 1010, y: 505.5 });
    assert.equal(r.outside, 'FrameError: frame region 3800,0,64,36 is not inside the 3840x2160 frame');
    assert.equal(r.empty, 'FrameError: frame region 0,0,0,36 is not inside the 3840x2160 frame');
    assert.equal(r.noFull, 'FrameError: bad full frame size 0x0');
    assert.deepEqual(r.headers, { region: { x: 0, y: 0, width: 3840, height: 2160 }, fullWidth: 3840, fullHeight: 2160 });
    assert.deepEqual(r.noHeaders, { region: { x: 0, y: 0, width: 640, height: 360 }, fullWidth: 640, fullHeight: 360 });
    assert.equal(r.badRegion, 'FrameError: bad X-Frame-Region "0,0,3840" (expected x,y,w,h)');
    assert.equal(r.badFull, 'FrameError: bad X-Frame-Full-Size "3840*2160" (expected WxH)');
    assert.match(r.headersOutside, /not inside the 3840x2160 frame/);
  });

  test('view.js: display size in device pixels, and the visible crop widened to its grid', async () => {
    const r = await page.evaluate(async () => {
      const v = await import(new URL('js/view.js', location.href).href);
      return {
        size: v.displaySize(640.4, 360.2, 2),
        clamped: v.displaySize(9000, 100, 2),
        none: v.displaySize(0, 300, 1),
        // A 3840x2160 frame at 1:1 scrolled by (100, 50) in an 800x600 box.
        scrolled: v.visibleCrop({ left: 0, top: 0, right: 800, bottom: 600 }, { left: -100, top: -50, right: 3740, bottom: 2110 }, 3840, 2160),
        corner: v.visibleCrop({ left: 0, top: 0, right: 800, bottom: 600 }, { left: -3100, top: -1600, right: 740, bottom: 560 }, 3840, 2160),
        whole: v.visibleCrop({ left: 0, top: 0, right: 800, bottom: 600 }, { left: 272, top: 236, right: 528, bottom: 364 }, 256, 128),
        message: v.viewMessage({ width: 1280, height: 720, crop: null }),
        query: (() => {
          const params = new URLSearchParams();
          v.addViewParams(params, { width: 0, height: 0, crop: [64, 0, 896, 704] });
          const sized = new URLSearchParams();
          v.addViewParams(sized, { width: 640, height: 360, crop: null });
          return [params.toString(), sized.toString()];
        })(),
      };
    });
    assert.deepEqual(r.size, { width: 1281, height: 720 });
    assert.deepEqual(r.clamped, { width: 16384, height: 200 });
    assert.equal(r.none, null);
    assert.deepEqual(r.scrolled, [64, 0, 896, 704]);
    assert.deepEqual(r.corner, [3072, 1600, 768, 560]);
    assert.equal(r.whole, null, 'a frame that shows whole needs no crop');
    assert.deepEqual(r.message, { type: 'config', width: 1280, height: 720, crop: null });
    assert.deepEqual(r.query, ['crop=64%2C0%2C896%2C704', 'width=640&height=360']);
  });

  test('the viewport asks for its display size in device pixels, in a config message of its own', async () => {
    const box = await viewportBox(page);
    const expected = { type: 'config', width: Math.round(box.width * box.ratio), height: Math.round(box.height * box.ratio), crop: null };
    await waitUntil(() => record.views().length > 0, 'a view message');
    assert.deepEqual(record.views().at(-1), expected);
    assert.equal(await page.getAttribute('#viewport', 'data-view'), `${expected.width}x${expected.height}`);
  });

  test('a burst of resizes sends one new size, after it settles', async () => {
    const before_ = record.views().length;
    // Five widths of the side panel 20 ms apart (well inside the debounce): the viewport's box
    // changes each time. (Window resizes through the browser take longer than that each.)
    await page.evaluate(async () => {
      const layout = document.querySelector('.layout');
      for (const side of [480, 520, 560, 600, 640]) {
        layout.style.gridTemplateColumns = `minmax(0, 1fr) ${side}px`;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    try {
      const box = await viewportBox(page);
      const expected = { type: 'config', width: Math.round(box.width * box.ratio), height: Math.round(box.height * box.ratio), crop: null };
      await waitUntil(() => record.views().length > before_, 'a view message after resizing');
      await page.waitForFunction((v) => document.getElementById('viewport').dataset.view === v, `${expected.width}x${expected.height}`);
      const sent = record.views().slice(before_);
      assert.deepEqual(sent, [expected], `sent ${JSON.stringify(sent)}`);
    } finally {
      await page.evaluate(() => {
        document.querySelector('.layout').style.gridTemplateColumns = '';
      });
    }
    const restored = await viewportBox(page);
    await page.waitForFunction((v) => document.getElementById('viewport').dataset.view === v, `${restored.width}x${restored.height}`);
  });

  test('a change of device pixel ratio (browser zoom, another screen) asks for the new size', async () => {
    const cdp = await page.context().newCDPSession(page);
    const before_ = record.views().length;
    await cdp.send('Emulation.setDeviceMetricsOverride', { width: 900, height: 700, deviceScaleFactor: 2, mobile: false });
    try {
      // Chromium may or may not have told the page by now; if not, do as it would.
      await page.evaluate(() => {
        const list = window.resolutionQueries.at(-1);
        if (list?.media === '(resolution: 1dppx)') list.dispatchEvent(new Event('change'));
      });
      await waitUntil(() => record.views().length > before_, 'a view message after the pixel ratio changed');
      const box = await viewportBox(page);
      assert.equal(box.ratio, 2);
      assert.deepEqual(record.views().at(-1), { type: 'config', width: box.width * 2, height: box.height * 2, crop: null });
      const watched = await page.evaluate(() => window.resolutionQueries.at(-1)?.media);
      assert.equal(watched, '(resolution: 2dppx)', 'the viewport watches for the next change from the new ratio');
    } finally {
      await cdp.send('Emulation.clearDeviceMetricsOverride');
      await cdp.detach();
    }
    await page.setViewportSize({ width: 1280, height: 860 });
    const box = await viewportBox(page);
    await page.waitForFunction((v) => document.getElementById('viewport').dataset.view === v, `${box.width}x${box.height}`);
  });

  test('at 1:1 the viewport asks for the visible crop at full resolution, and follows scrolling', async () => {
    await page.click('#btn-actual');
    // The canvas takes the full frame's size so that the page can scroll over it.
    await page.waitForFunction(([w, h]) => {
      const canvas = document.getElementById('frame-canvas');
      return canvas.width === w && canvas.height === h;
    }, FULL);
    const canvasBox = await page.locator('#frame-canvas').boundingBox();
    assert.equal(Math.round(canvasBox.width), FULL[0]);
    const first = await waitUntil(() => record.views().find((m) => m.width === 0 && m.crop), 'a crop request');
    assert.equal(first.height, 0);
    assertCropCovers(first.crop, await visibleRegion(page), FULL);
    assert.ok(first.crop[2] < FULL[0], `the frame does not fit the viewport, yet the crop is ${first.crop}`);

    const before_ = record.views().length;
    await page.evaluate(() => document.getElementById('viewport').scrollTo(300, 200));
    const scrolled = await waitUntil(() => record.views().length > before_ && record.views().at(-1), 'a crop after scrolling');
    assertCropCovers(scrolled.crop, await visibleRegion(page), FULL);
    // The frame is far wider than the box (it may be barely taller): the crop moved right.
    assert.ok(scrolled.crop[0] > 0, `scrolled crop ${scrolled.crop}`);
    await screenshot(page, 'view-actual-1280x860');

    const beforeFit = record.views().length;
    await page.click('#btn-fit');
    const fit = await waitUntil(() => record.views().length > beforeFit && record.views().at(-1), 'a size request after Fit');
    const box = await viewportBox(page);
    assert.deepEqual(fit, { type: 'config', width: box.width * box.ratio, height: box.height * box.ratio, crop: null });
  });

  test('fit and 1:1 at a phone, laptop and desktop window: the image in its box, 1:1 cropped only when it does not fit', async () => {
    for (const [width, height] of [[390, 844], [1280, 860], [1920, 1080]]) {
      await page.setViewportSize({ width, height });
      await page.click('#btn-fit');
      const box = await viewportBox(page);
      await page.waitForFunction((v) => document.getElementById('viewport').dataset.view === v, `${box.width * box.ratio}x${box.height * box.ratio}`);
      const fit = await page.evaluate(() => {
        const outer = document.getElementById('viewport').getBoundingClientRect();
        const canvas = document.getElementById('frame-canvas').getBoundingClientRect();
        return { inside: canvas.left >= outer.left && canvas.right <= outer.right + 0.5 && canvas.top >= outer.top && canvas.bottom <= outer.bottom + 0.5, sideways: document.documentElement.scrollWidth - window.innerWidth };
      });
      assert.ok(fit.inside, `at ${width}x${height} the fitted canvas leaves the viewport`);
      assert.ok(fit.sideways <= 0, `at ${width}x${height} the page scrolls sideways by ${fit.sideways}px`);
      await screenshot(page, `view-fit-${width}x${height}`);
      await page.click('#btn-actual');
      const fits = box.width >= FULL[0] && box.height >= FULL[1];
      await page.waitForFunction((cropped) => {
        const view = document.getElementById('viewport').dataset.view;
        return cropped ? view.startsWith('full crop=') : view === 'full';
      }, !fits);
      const scroll = await page.evaluate(() => {
        const el = document.getElementById('viewport');
        return { x: el.scrollWidth > el.clientWidth, y: el.scrollHeight > el.clientHeight, sideways: document.documentElement.scrollWidth - window.innerWidth };
      });
      assert.equal(scroll.x, box.width < FULL[0], `at ${width}x${height} 1:1 scrolls sideways: ${scroll.x}`);
      assert.ok(scroll.sideways <= 0, `at ${width}x${height} the page (not the viewport) scrolls sideways at 1:1`);
      // Scrolled to the far corner, the statistics overlay still shows in the viewport's box.
      await page.evaluate(() => new Promise((resolve) => {
        const el = document.getElementById('viewport');
        el.scrollTo(el.scrollWidth, el.scrollHeight);
        requestAnimationFrame(() => requestAnimationFrame(resolve));
      }));
      const hud = await page.evaluate(() => {
        const outer = document.getElementById('viewport').getBoundingClientRect();
        const box = document.getElementById('hud').getBoundingClientRect();
        return { dx: box.left - outer.left, dy: box.top - outer.top };
      });
      assert.ok(hud.dx >= 0 && hud.dx < 20 && hud.dy >= 0 && hud.dy < 20, `at ${width}x${height} the HUD scrolled away: ${JSON.stringify(hud)}`);
      await screenshot(page, `view-actual-${width}x${height}`);
    }
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.click('#btn-fit');
    const box = await viewportBox(page);
    await page.waitForFunction((v) => document.getElementById('viewport').dataset.view === v, `${box.width}x${box.height}`);
  });

  test('polling asks GET /render/frame.jpg for the display size, and for the crop at 1:1', async () => {
    const poller = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    try {
      const urls = [];
      poller.on('request', (request) => {
        if (request.url().includes('/render/frame.')) urls.push(new URL(request.url()));
      });
      await poller.goto(new URL('?transport=poll', demo.url).href);
      await waitForFrames(poller, 0);
      const box = await viewportBox(poller);
      const sized = await waitUntil(() => urls.find((u) => u.searchParams.get('width') === String(box.width * box.ratio)), 'a poll with the display size');
      assert.equal(sized.pathname, '/render/frame.jpg');
      assert.equal(sized.searchParams.get('height'), String(box.height * box.ratio));
      assert.equal(sized.searchParams.get('crop'), null);
      await poller.click('#btn-actual');
      const cropped = await waitUntil(() => urls.find((u) => u.searchParams.has('crop')), 'a poll with a crop', 15000);
      assert.equal(cropped.searchParams.get('width'), null, 'at 1:1 the full resolution is asked for');
      assertCropCovers(cropped.searchParams.get('crop').split(',').map(Number), await visibleRegion(poller), FULL);
      assert.deepEqual(poller.problems, []);
    } finally {
      await poller.context().close();
    }
  });

  test('a slow decode never queues more than one undrawn frame: newer frames replace it', async () => {
    const slow = await openPage(browser, { viewport: { width: 800, height: 600 } });
    try {
      await slow.goto(demo.url);
      await waitForFrames(slow, 0);
      const r = await slow.evaluate(async () => {
        const { viewport } = window.octaneweb;
        viewport.stop();
        // Every decode takes 60 ms longer than it would; frames come every 5 ms.
        const decode = viewport.decode.bind(viewport);
        viewport.decode = async (frame) => {
          await new Promise((resolve) => setTimeout(resolve, 60));
          return decode(frame);
        };
        const canvas = new OffscreenCanvas(64, 36);
        canvas.getContext('2d').fillRect(0, 0, 64, 36);
        const blob = await canvas.convertToBlob({ type: 'image/png' });
        const start = { received: viewport.framesReceived, drawn: viewport.framesDrawn, dropped: viewport.framesDropped };
        const seq0 = viewport.lastSeq + 1;
        for (let i = 0; i < 40; i += 1) {
          viewport.enqueue({ seq: seq0 + i, width: 64, height: 36, region: { x: 0, y: 0, width: 64, height: 36 }, fullWidth: 64, fullHeight: 36, encoding: 'png', payload: { kind: 'blob', blob } });
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const el = document.getElementById('viewport');
        while (viewport.decoding) await new Promise((resolve) => setTimeout(resolve, 10));
        return {
          received: viewport.framesReceived - start.received,
          drawn: viewport.framesDrawn - start.drawn,
          dropped: viewport.framesDropped - start.dropped,
          queuedMax: Number(el.dataset.framesQueuedMax),
          queued: Number(el.dataset.framesQueued),
          bitmapsOpen: Number(el.dataset.bitmapsOpen),
          lastSeqDrawn: Number(el.dataset.seq),
          lastSeqSent: seq0 + 39,
        };
      });
      assert.equal(r.received, 40);
      assert.equal(r.drawn + r.dropped, r.received, `every frame is drawn or dropped: ${JSON.stringify(r)}`);
      assert.ok(r.dropped >= 20, `a slow page skips frames: ${JSON.stringify(r)}`);
      assert.ok(r.drawn >= 2, `frames still get drawn: ${JSON.stringify(r)}`);
      assert.equal(r.queuedMax, 1, `never more than one frame waiting: ${JSON.stringify(r)}`);
      assert.equal(r.queued, 0);
      assert.equal(r.lastSeqDrawn, r.lastSeqSent, 'the newest frame is the one left on screen');
      assert.equal(r.bitmapsOpen, 1, 'only the frame on screen keeps its bitmap');
      assert.deepEqual(slow.problems, []);
    } finally {
      await slow.context().close();
    }
  });

  test('a 4K float frame is tone mapped off the main thread (no long task beside the pixel work it replaces)', async () => {
    const other = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    try {
      await other.goto(demo.url);
      await waitForFrames(other, 0);
      const r = await other.evaluate(async () => {
        const { viewport } = window.octaneweb;
        viewport.stop();
        const { tonemap } = await import(new URL('js/frame.js', location.href).href);
        const [w, h] = [3840, 2160];
        const floats = new Float32Array(w * h * 4);
        for (let i = 0; i < floats.length; i += 1) floats[i] = (i % 1024) / 512;
        // What the same work costs on the page's thread.
        const t0 = performance.now();
        tonemap(floats, 0, 2.2);
        const mainThreadMs = performance.now() - t0;
        // Observe from the next task on: this one (filling and tone mapping) is the baseline.
        await new Promise((resolve) => setTimeout(resolve, 0));
        const longTasks = [];
        const observer = new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration)));
        observer.observe({ type: 'longtask' });
        const el = document.getElementById('viewport');
        const drawn = viewport.framesDrawn;
        viewport.enqueue({
          seq: viewport.lastSeq + 1, width: w, height: h, hdr: true, encoding: 'sse',
          region: { x: 0, y: 0, width: w, height: h }, fullWidth: w, fullHeight: h, payload: { kind: 'float', data: floats },
        });
        while (viewport.framesDrawn === drawn) await new Promise((resolve) => setTimeout(resolve, 10));
        await new Promise((resolve) => setTimeout(resolve, 50));
        observer.disconnect();
        return { mainThreadMs, longTasks, width: Number(el.dataset.width), kept: viewport.lastFrame.payload.data.length };
      });
      assert.equal(r.width, 3840);
      assert.equal(r.kept, 3840 * 2160 * 4, 'the float pixels come back from the worker for exposure changes');
      const longest = Math.max(0, ...r.longTasks);
      assert.ok(r.mainThreadMs > 100, `tone mapping 4K on the page's thread took only ${r.mainThreadMs} ms; the check below means nothing`);
      assert.ok(longest < r.mainThreadMs / 2, `a ${longest} ms long task while drawing (tone mapping alone takes ${r.mainThreadMs} ms there)`);
      assert.deepEqual(other.problems, []);
    } finally {
      await other.context().close();
    }
  });

  // --- with a gateway serving views (the server side of issue 17) ---

  test('GET /render/frame.jpg takes width/height and crop (gateway serving views)', { skip: EMULATED && 'HTTP is not emulated' }, async () => {
    const get = async (query) => {
      const response = await fetch(new URL(`render/frame.jpg?${query}`, demo.url));
      const bytes = new Uint8Array(await response.arrayBuffer());
      return { status: response.status, headers: response.headers, bytes };
    };
    const scaled = await get('width=640&height=360&quality=80');
    assert.equal(scaled.status, 200);
    assert.deepEqual(jpegSize(scaled.bytes), { width: 640, height: 360 });
    assert.equal(scaled.headers.get('x-frame-width'), '640');
    assert.equal(scaled.headers.get('x-frame-height'), '360');
    assert.equal(scaled.headers.get('x-frame-region'), `0,0,${FULL[0]},${FULL[1]}`);
    assert.equal(scaled.headers.get('x-frame-full-size'), `${FULL[0]}x${FULL[1]}`);
    const crop = await get('crop=64,32,320,180');
    assert.equal(crop.status, 200);
    assert.deepEqual(jpegSize(crop.bytes), { width: 320, height: 180 });
    assert.equal(crop.headers.get('x-frame-region'), '64,32,320,180');
    const full = await get('');
    assert.deepEqual(jpegSize(full.bytes), { width: FULL[0], height: FULL[1] });
  });

  test('bad sizes and crops over HTTP get a 400 naming the parameter (gateway serving views)', { skip: EMULATED && 'HTTP is not emulated' }, async () => {
    const cases = [
      ['width=640', /height/],
      ['width=20000&height=100', /width/],
      ['width=-1&height=100', /width/],
      ['width=abc&height=100', /width/],
      ['crop=0,0,0,10', /crop/],
      [`crop=${FULL[0] - 100},0,200,100`, /crop/],
      ['crop=1,2,3', /crop/],
    ];
    for (const [query, names] of cases) {
      const response = await fetch(new URL(`render/frame.jpg?${query}`, demo.url));
      const body = await response.json().catch(() => null);
      assert.equal(response.status, 400, `?${query}: HTTP ${response.status}`);
      assert.equal(body?.success, false, `?${query}: ${JSON.stringify(body)}`);
      assert.match(body.error, names, `?${query}: ${body.error}`);
    }
    const ok = await fetch(new URL('render/frame.jpg?width=640&height=360', demo.url));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
  });

  test('resizing the window mid-stream changes the size of the next frame (gateway serving views)', async () => {
    assert.equal(record.servesViews, true, 'the gateway does not announce views in its hello');
    /**
     * Resizes the window and resolves to the first frame received after the gateway
     * confirmed the new view: the next frame, which must show it.
     */
    const resizeTo = async (size) => {
      await page.evaluate(() => {
        const { viewport } = window.octaneweb;
        window.nextViewFrame = new Promise((resolve) => {
          let confirmedAt = null;
          viewport.addEventListener('notice', function onNotice({ detail }) {
            const asked = viewport.view;
            if (detail.type === 'config' && detail.width === asked.width && detail.height === asked.height && detail.crop === null) {
              confirmedAt = performance.timeOrigin + performance.now();
              viewport.removeEventListener('notice', onNotice);
            }
          });
          viewport.addEventListener('frame', function onFrame({ detail }) {
            if (confirmedAt === null || !(detail.receivedAt > confirmedAt)) return;
            viewport.removeEventListener('frame', onFrame);
            resolve({ width: detail.width, height: detail.height, region: detail.region, fullWidth: detail.fullWidth, fullHeight: detail.fullHeight, view: viewport.view });
          });
        });
      });
      await page.setViewportSize(size);
      const frame = await page.evaluate(() => Promise.race([
        window.nextViewFrame,
        new Promise((resolve, reject) => {
          setTimeout(() => reject(new Error(`no frame after a confirmed view ${JSON.stringify(window.octaneweb.viewport.view)} within 20 s`)), 20000);
        }),
      ]));
      const box = await viewportBox(page);
      assert.deepEqual(frame.view, { width: box.width * box.ratio, height: box.height * box.ratio, crop: null });
      const fit = Math.min(frame.view.width, (frame.view.height * FULL[0]) / FULL[1], FULL[0]);
      assert.deepEqual(frame.region, { x: 0, y: 0, width: FULL[0], height: FULL[1] });
      assert.deepEqual([frame.fullWidth, frame.fullHeight], FULL);
      assert.ok(frame.width >= Math.floor(fit) && frame.width <= FULL[0], `image ${frame.width} wide for a fit of ${fit}`);
      assert.ok(Math.abs(frame.height - (frame.width * FULL[1]) / FULL[0]) <= 1, `aspect kept: ${frame.width}x${frame.height}`);
      return frame.width;
    };
    // The earlier tests left the window at 1280x860: each step is a change of view.
    const narrow = await resizeTo({ width: 390, height: 844 });
    await screenshot(page, 'view-fit-390x844');
    const wide = await resizeTo({ width: 1280, height: 860 });
    await screenshot(page, 'view-fit-1280x860');
    assert.ok(wide < FULL[0], `a ${wide} px frame for a box narrower than ${FULL[0]} px`);
    assert.ok(narrow < wide, `the narrow window still gets ${narrow} px frames (wide: ${wide})`);
  });

  test('a bad size or crop over the WebSocket is refused naming the field; the stream goes on as before (gateway serving views)', async () => {
    await page.evaluate(() => {
      window.viewErrors = [];
      window.octaneweb.viewport.addEventListener('notice', (event) => {
        if (event.detail.type === 'error') window.viewErrors.push(event.detail.message);
      });
    });
    const width = await page.getAttribute('#viewport', 'data-width');
    const cases = [
      [{ type: 'config', width: 640 }, /height/],
      [{ type: 'config', width: 99999, height: 100 }, /width/],
      [{ type: 'config', width: 0, height: 360 }, /width|height/],
      [{ type: 'config', crop: [0, 0, 0, 5] }, /crop/],
      [{ type: 'config', crop: [FULL[0] - 10, 0, 64, 64] }, /crop/],
      [{ type: 'config', crop: 'all' }, /crop/],
    ];
    for (const [index, [message, names]] of cases.entries()) {
      await page.evaluate((m) => window.octaneweb.viewport.control(m), message);
      const error = await page.waitForFunction((n) => window.viewErrors[n], index).then((h) => h.jsonValue());
      assert.match(error, names, `${JSON.stringify(message)}: ${error}`);
    }
    await page.click('#btn-restart');
    const frames = Number(await page.getAttribute('#viewport', 'data-frames'));
    await waitForFrames(page, frames + 1);
    assert.equal(await page.getAttribute('#viewport', 'data-width'), width, 'the view before the refusals holds');
  });

  test('1:1 receives the visible region at full resolution, drawn at its place (gateway serving views)', async () => {
    await page.click('#btn-actual');
    await page.waitForFunction(() => /^full crop=/.test(document.getElementById('viewport').dataset.view));
    const unscrolled = await page.getAttribute('#viewport', 'data-view');
    await page.evaluate(() => document.getElementById('viewport').scrollTo(200, 100));
    await page.waitForFunction((v) => /^full crop=/.test(document.getElementById('viewport').dataset.view) && document.getElementById('viewport').dataset.view !== v, unscrolled);
    const asked = (await page.getAttribute('#viewport', 'data-view')).replace('full crop=', '');
    await page.waitForFunction((region) => document.getElementById('viewport').dataset.frameRegion === region, asked, { timeout: 20000 });
    const [x, y, w, h] = asked.split(',').map(Number);
    assert.equal(Number(await page.getAttribute('#viewport', 'data-width')), w, 'a crop is sent 1:1');
    assert.equal(Number(await page.getAttribute('#viewport', 'data-height')), h);
    const canvas = await page.evaluate(() => ({ w: document.getElementById('frame-canvas').width, h: document.getElementById('frame-canvas').height }));
    assert.deepEqual(canvas, { w: FULL[0], h: FULL[1] });
    assertCropCovers([x, y, w, h], await visibleRegion(page), FULL);
    await screenshot(page, 'view-actual-crop-1280x860');
    await page.click('#btn-fit');
  });

  test('a click on a scaled frame picks the full-frame pixel under it (gateway serving views)', async () => {
    await page.waitForFunction(() => {
      const el = document.getElementById('viewport');
      return el.dataset.zoom === 'fit' && Number(el.dataset.width) < Number(el.dataset.fullWidth);
    });
    const target = { x: FULL[0] * 0.37, y: FULL[1] * 0.61 };
    // Where that film point shows: the canvas box with object-fit: contain, worked out here.
    const geometry = await page.evaluate(() => {
      const canvas = document.getElementById('frame-canvas');
      const box = canvas.getBoundingClientRect();
      const scale = Math.min(box.width / canvas.width, box.height / canvas.height);
      const width = canvas.width * scale;
      const height = canvas.height * scale;
      return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
    });
    const client = { x: geometry.left + (target.x / FULL[0]) * geometry.width, y: geometry.top + (target.y / FULL[1]) * geometry.height };
    const picked = page.evaluate(() => new Promise((resolve) => {
      window.octaneweb.tools.addEventListener('pick', (event) => resolve({ at: event.detail.at, handle: event.detail.hit?.node?.handle ?? null }), { once: true });
    }));
    await page.mouse.click(client.x, client.y);
    const { at, handle } = await picked;
    const filmPerScreenPixel = FULL[0] / geometry.width;
    assert.ok(Math.abs(at.x - target.x) <= filmPerScreenPixel && Math.abs(at.y - target.y) <= filmPerScreenPixel,
      `picked at ${JSON.stringify(at)}, expected ${JSON.stringify(target)} (±${filmPerScreenPixel})`);
    // The page asked the server about that pixel: the same answer as asking it directly.
    const server = await callJson(demo.url, 'ApiRenderEngine', 'pick', { x: Math.floor(at.x), y: Math.floor(at.y), intersectionsSize: 1 });
    assert.equal(handle, Number(server.result) > 0 ? server.intersections.node.handle : null);
    assert.deepEqual(page.problems, []);
  });
});
