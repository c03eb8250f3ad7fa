// HDR frames: with a render server sending linear float RGBA, the viewport offers an
// exposure control, and changing it brightens or darkens the streamed image.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { canvasStats, launchBrowser, openPage, screenshot, startDemo, waitForFrames } from './harness.mjs';

describe('hdr', { timeout: 120000 }, () => {
  let demo;
  let browser;
  let page;

  before(async () => {
    demo = await startDemo({ extraArgs: ['--hdr'] });
    browser = await launchBrowser();
    page = await openPage(browser);
    await page.goto(demo.url);
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** Sets the exposure slider and waits for a frame drawn with it; resolves to the image's stats. */
  async function exposeAt(ev) {
    const acks = Number(await page.getAttribute('#viewport', 'data-config-acks') || 0);
    await page.locator('#rng-exposure').evaluate((el, value) => {
      el.value = String(value);
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, ev);
    // Frames sent after the server confirms the new settings show them.
    await page.waitForFunction((n) => Number(document.getElementById('viewport').dataset.configAcks || 0) > n, acks);
    // The second frame on: one decoded while the confirmation arrived may predate it.
    const frames = Number(await page.getAttribute('#viewport', 'data-frames'));
    await waitForFrames(page, frames + 1);
    return canvasStats(page);
  }

  test('HDR frames show the exposure control and exposure changes the image', async () => {
    await waitForFrames(page, 0);
    assert.equal(await page.getAttribute('#viewport', 'data-hdr'), '1');
    await page.waitForSelector('#hdr-controls', { state: 'visible' });
    assert.match(await page.textContent('#hud-size'), /HDR/);
    const dark = await exposeAt(-3);
    const bright = await exposeAt(2);
    assert.ok(bright.mean > dark.mean + 20, `exposure had no visible effect: dark ${dark.mean}, bright ${bright.mean}`);
    assert.match(await page.textContent('#out-exposure'), /2\.0 EV/);
    await screenshot(page, 'hdr-exposure');
    assert.deepEqual(page.problems, []);
  });
});
