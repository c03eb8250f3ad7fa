// Every control can be reached and clicked at a laptop size and a phone size: a real,
// non-forced click (the browser refuses one that lands on another element), and no page
// wider than the window.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, openPage, screenshot, startDemo, waitForFrames } from './harness.mjs';

/** Controls of the page that must answer a click, in page order. */
const CONTROLS = [
  '.topbar-actions button',
  '.viewport-toolbar button',
  '.viewport-toolbar select',
  '.controls button',
  '.controls select',
  '.controls input[type="range"]',
  '.tabs [role="tab"]',
].join(', ');

describe('layout', { timeout: 240000 }, () => {
  let demo;
  let browser;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  for (const [width, height] of [[1024, 700], [390, 844], [1920, 1080]]) {
    test(`at ${width}×${height} every button, menu and tab takes a normal click`, async () => {
      const page = await openPage(browser, { viewport: { width, height } });
      await page.goto(demo.url);
      await waitForFrames(page, 0);
      await page.waitForFunction(() => document.body.dataset.render && document.body.dataset.render !== 'unknown');
      await screenshot(page, `layout-${width}x${height}`);

      const scroll = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, window: window.innerWidth }));
      assert.ok(scroll.page <= scroll.window, `the page scrolls sideways: ${scroll.page} px in a ${scroll.window} px window`);

      const count = await page.locator(CONTROLS).count();
      assert.ok(count >= 20, `only ${count} controls found`);
      const clicked = [];
      for (let i = 0; i < count; i += 1) {
        const control = page.locator(CONTROLS).nth(i);
        if (!(await control.isVisible()) || !(await control.isEnabled())) continue;
        const name = await control.evaluate((el) => el.id || el.textContent.trim());
        // Buttons get a real click; menus and sliders a trial click (the same hit test
        // without changing the render's settings).
        const tag = await control.evaluate((el) => el.tagName);
        await control.click({ trial: tag !== 'BUTTON', timeout: 5000 }).catch((err) => {
          throw new Error(`${name} cannot be clicked at ${width}×${height}: ${err.message.split('\n')[0]}`);
        });
        clicked.push(name);
        // A dialog or the region tool opened by the click is closed again.
        if (await page.locator('dialog[open]').count()) await page.keyboard.press('Escape');
        if (await page.getAttribute('#btn-region', 'aria-pressed') === 'true') await page.click('#btn-region');
      }
      for (const id of ['btn-project', 'btn-settings', 'btn-help', 'btn-fit', 'btn-actual', 'btn-reset-camera', 'btn-region', 'btn-restart', 'btn-stop', 'tab-scene', 'tab-render', 'tab-api', 'sel-clay', 'sel-subsample', 'sel-encoding']) {
        assert.ok(clicked.includes(id), `${id} was not clicked at ${width}×${height} (clicked: ${clicked.join(', ')})`);
      }
      // Stop was pressed: leave the render running for whoever looks next.
      await page.click('#btn-restart');
      await page.click('#tab-scene');
      await screenshot(page, `layout-${width}x${height}-clicked`);
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }
});
