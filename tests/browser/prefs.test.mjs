// prefs.js, the one owner of localStorage: settings stored by earlier versions are read under
// their old keys, values are checked and clamped, and a browser that refuses storage still
// gets a working page whose settings last for the visit.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, openPage, startDemo } from './harness.mjs';

describe('prefs', { timeout: 120000 }, () => {
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

  test('settings of earlier versions are read, checked and kept', async () => {
    // What an earlier client left behind, including a value out of range, one of the wrong
    // type, a field this version does not know, and history in its own key.
    const page = await openPage(browser, {
      initScript: () => {
        if (sessionStorage.getItem('seeded')) return;
        sessionStorage.setItem('seeded', '1');
        localStorage.setItem('octaneweb.prefs', JSON.stringify({ transport: 'sse', maxFps: 999, cameraRate: 'fast', encoding: 'png', quality: 70, exposure: 1.25, futureField: 'keep me' }));
        localStorage.setItem('octaneweb.history', JSON.stringify([{ service: 'livelinkapi.LiveLinkService', method: 'GetCamera', request: {}, outcome: 'OK · 3 ms' }, 'garbage']));
      },
    });
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    const seen = await page.evaluate(async () => {
      const { prefs, PrefError } = await import(new URL('js/prefs.js', location.href).href);
      const read = prefs.all();
      const errors = [];
      for (const [name, value] of [['transport', 'carrier-pigeon'], ['quality', 'high'], ['server', 'ftp://example.com/']]) {
        try {
          prefs.set(name, value);
        } catch (err) {
          errors.push(err instanceof PrefError && err.message.startsWith(`preference ${name}:`));
        }
      }
      const changes = [];
      prefs.subscribe('maxFps', (value) => changes.push(value));
      const clamped = [prefs.set('maxFps', '300'), prefs.set('cameraRate', 0), prefs.set('exposure', 0.3000001), prefs.set('quality', null)];
      prefs.set('maxFps', 240);
      prefs.rememberProject('/p/a.orbx');
      prefs.rememberProject('/p/b.orbx');
      prefs.rememberProject('/p/a.orbx');
      for (let i = 0; i < 12; i += 1) prefs.rememberProject(`/p/n${i}.orbx`);
      prefs.set('panels', { scene: false, explorer: true, junk: 'x' });
      return {
        read,
        errors,
        clamped,
        changes,
        recent: prefs.get('recentProjects'),
        panels: prefs.get('panels'),
        stored: JSON.parse(localStorage.getItem('octaneweb.prefs')),
        historyShown: document.querySelectorAll('#explorer-history > li[data-index]').length,
      };
    });
    assert.equal(seen.read.transport, 'sse');
    assert.equal(seen.read.maxFps, 240, 'clamped to its range');
    assert.equal(seen.read.cameraRate, 30, 'a wrong type falls back to the default');
    assert.equal(seen.read.encoding, 'png');
    assert.equal(seen.read.quality, 70);
    assert.equal(seen.read.exposure, 1.3, 'rounded to the slider step');
    assert.equal(seen.read.server, '');
    assert.equal(seen.read.history.length, 1, 'history under its old key, the malformed entry dropped');
    assert.equal(seen.historyShown, 1, 'the explorer shows the stored history');
    assert.deepEqual(seen.errors, [true, true, true], 'invalid values are refused with a PrefError');
    assert.deepEqual(seen.clamped, [240, 1, 0.3, null]);
    assert.deepEqual(seen.changes, [], 'setting the value it already has notifies nobody');
    assert.equal(seen.recent.length, 10);
    assert.equal(seen.recent[0], '/p/n11.orbx');
    assert.ok(!seen.recent.includes('/p/b.orbx') && seen.recent.filter((p) => p === '/p/a.orbx').length <= 1);
    assert.deepEqual(seen.panels, { scene: false, explorer: true });
    assert.equal(seen.stored.futureField, 'keep me', 'fields of other versions survive a write');
    assert.equal(seen.stored.maxFps, 240);

    // The server URL keeps its own key, which api.js reads on the next load.
    const server = await page.evaluate(async () => {
      const api = await import(new URL('js/api.js', location.href).href);
      api.storeServer(` ${location.origin}/ `);
      const stored = localStorage.getItem('octaneweb.server');
      api.storeServer('');
      return { stored, after: localStorage.getItem('octaneweb.server'), back: api.storedServer() };
    });
    assert.equal(server.stored, demo.url.replace(/\/$/, '') + '/');
    assert.equal(server.after, null);
    assert.equal(server.back, '');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a browser that refuses storage still gets a working page', async () => {
    const page = await openPage(browser, {
      initScript: () => {
        Object.defineProperty(window, 'localStorage', { get() { throw new DOMException('storage is disabled', 'SecurityError'); } });
      },
    });
    await page.goto(demo.url);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.fill('#explorer-search', 'GetCamera');
    await page.click('button[data-method="livelinkapi.LiveLinkService/GetCamera"]');
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.equal(await page.locator('#explorer-history > li[data-index]').count(), 1, 'history kept for the visit');
    const value = await page.evaluate(async () => {
      const { prefs } = await import(new URL('js/prefs.js', location.href).href);
      prefs.set('transport', 'poll');
      return [prefs.get('transport'), prefs.get('history').length];
    });
    assert.deepEqual(value, ['poll', 1]);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});
