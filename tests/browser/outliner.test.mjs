// The scene outliner against the real demo: the tree of graphs, nodes and linked inputs,
// keyboard navigation, the filter, rename and delete read back from the server, a selection
// made elsewhere revealed, a reload on projectManagerChanged, and the layout on a phone.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { callJson, launchBrowser, openPage, screenshot, startDemo } from './harness.mjs';

/** The rows of the tree as `{level, name, pin, expanded, selected, shown}`, in document order. */
function rows(page) {
  return page.locator('#outliner li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => ({
    level: Number(li.getAttribute('aria-level')),
    name: li.dataset.name,
    pin: li.dataset.pin ?? '',
    handle: li.dataset.handle,
    expanded: li.getAttribute('aria-expanded'),
    selected: li.getAttribute('aria-selected') === 'true',
    shown: li.checkVisibility(),
  })));
}

/** A top-level row (owned by the root graph) by name. */
const topRow = (page, name) => page.locator(`#outliner li[aria-level="2"][data-name="${name}"]`);

/** Opens a row with its twisty and waits until its children are read. */
async function expandRow(page, li) {
  if ((await li.getAttribute('aria-expanded')) !== 'true') await li.locator(':scope > .row > .ol-twisty').click();
  await li.locator(':scope > ul[role="group"] > li[role="treeitem"]').first().waitFor();
}

/** The names of the items a graph owns, read from the server. */
async function ownedNames(baseUrl, graph) {
  const owned = await callJson(baseUrl, 'ApiNodeGraph', 'getOwnedItems', { objectPtr: graph });
  const { result: size } = await callJson(baseUrl, 'ApiItemArray', 'size', { objectPtr: owned.list });
  const names = [];
  for (let index = 0; index < Number(size); index += 1) {
    const { result: item } = await callJson(baseUrl, 'ApiItemArray', 'get', { objectPtr: owned.list, index });
    names.push((await callJson(baseUrl, 'ApiItem', 'name', { objectPtr: item })).result);
  }
  return names;
}

/** The handle and type of the top-level graph with this name, read from the server. */
async function graphRef(baseUrl, name) {
  const root = (await callJson(baseUrl, 'ApiProjectManager', 'rootNodeGraph')).result;
  const owned = await callJson(baseUrl, 'ApiNodeGraph', 'getOwnedItems', { objectPtr: root });
  const { result: size } = await callJson(baseUrl, 'ApiItemArray', 'size', { objectPtr: owned.list });
  for (let index = 0; index < Number(size); index += 1) {
    const { result: item } = await callJson(baseUrl, 'ApiItemArray', 'get', { objectPtr: owned.list, index });
    if ((await callJson(baseUrl, 'ApiItem', 'name', { objectPtr: item })).result === name) return item;
  }
  throw new Error(`no graph ${name}`);
}

describe('outliner', { timeout: 180000 }, () => {
  let demo;
  let browser;
  let page;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: { width: 1280, height: 860 } });
    await page.goto(demo.url);
    await page.waitForSelector('#outliner[data-state="ready"]');
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('the tree shows the root graph, its graphs and its nodes', async () => {
    assert.equal(await page.locator('#outliner [role="tree"]').count(), 1);
    const all = await rows(page);
    assert.equal(all[0].level, 1);
    assert.equal(all[0].expanded, 'true');
    const top = all.filter((r) => r.level === 2).map((r) => r.name);
    for (const name of ['Render target', 'Camera', 'Daylight environment', 'Film settings', 'Path tracing kernel', 'Geometry', 'Materials']) {
      assert.ok(top.includes(name), `${name} missing from ${JSON.stringify(top)}`);
    }
    assert.equal(await page.locator('#outliner li.graph[aria-level="2"]').count(), 2);
    // One tab stop: exactly one row is in the tab order.
    assert.equal(await page.locator('#outliner li[role="treeitem"][tabindex="0"]').count(), 1);
    assert.equal(await page.getAttribute('#outliner input[type="search"]', 'placeholder'), 'type to filter loaded items');
    assert.equal(await page.locator('#outliner label[for]').textContent(), 'Filter');

    await expandRow(page, topRow(page, 'Geometry'));
    await expandRow(page, topRow(page, 'Materials'));
    const geometry = await topRow(page, 'Geometry').locator(':scope > ul > li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    assert.ok(geometry.includes('Red sphere') && geometry.includes('Red sphere placement'), JSON.stringify(geometry));
    const materials = await topRow(page, 'Materials').locator(':scope > ul > li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    assert.ok(materials.includes('Red matte') && materials.includes('Copper'), JSON.stringify(materials));
    await screenshot(page, 'outliner-1-tree');
    assert.deepEqual(page.problems, []);
  });

  test('a node expands to the nodes linked into its pins, with the pin labels', async () => {
    const target = topRow(page, 'Render target');
    await expandRow(page, target);
    const linked = await target.locator(':scope > ul > li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => ({
      pin: li.dataset.pin, name: li.dataset.name, level: li.getAttribute('aria-level'), text: li.querySelector('.row').textContent,
    })));
    const byName = Object.fromEntries(linked.map((l) => [l.name, l]));
    for (const name of ['Camera', 'Daylight environment', 'Film settings', 'Path tracing kernel', 'Geometry']) {
      assert.ok(byName[name], `${name} not linked under the render target: ${JSON.stringify(linked)}`);
      assert.equal(byName[name].level, '3');
    }
    assert.equal(byName.Camera.pin, 'Camera');
    assert.match(byName['Daylight environment'].text, /Environment:\s*Daylight environment/);
    assert.match(byName['Path tracing kernel'].text, /Kernel:\s*Path tracing kernel/);
    // Value nodes (the camera's fov and so on) are not rows: the camera's linked inputs are none.
    const camera = target.locator(':scope > ul > li[data-name="Camera"]');
    await camera.locator(':scope > .row > .ol-twisty').click();
    await page.waitForFunction(() => {
      const li = document.querySelector('#outliner li[aria-level="3"][data-name="Camera"]');
      return li && !li.hasAttribute('aria-expanded') && li.classList.contains('leaf');
    });
    await screenshot(page, 'outliner-2-linked-inputs');
  });

  test('arrow keys move and expand, Enter selects for the inspector', async () => {
    const target = topRow(page, 'Render target');
    await target.locator(':scope > .row .ol-name').click();
    assert.equal(await page.evaluate(() => document.activeElement.dataset.name), 'Render target');
    assert.equal(await target.getAttribute('aria-selected'), 'true');
    assert.equal(await page.evaluate(() => window.octaneweb.selection.current?.source), 'outliner');
    assert.equal(await page.evaluate(() => window.octaneweb.selection.key), await target.getAttribute('data-handle'));

    await page.keyboard.press('ArrowLeft');
    assert.equal(await target.getAttribute('aria-expanded'), 'false');
    await page.keyboard.press('ArrowRight');
    assert.equal(await target.getAttribute('aria-expanded'), 'true');
    await page.keyboard.press('ArrowRight');
    assert.deepEqual(await page.evaluate(() => [document.activeElement.dataset.pin, document.activeElement.getAttribute('aria-level')]), ['Camera', '3']);
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.name), 'Daylight environment');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => window.octaneweb.selection.current?.name), 'Daylight environment');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.name), 'Render target');
    await page.keyboard.press('ArrowUp');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-level')), '1');
    assert.equal(await page.locator('#outliner li[role="treeitem"][tabindex="0"]').count(), 1);
    // Space selects in the tree and does not reach the page's shortcuts (Space pauses rendering).
    await page.evaluate(() => {
      window.spaceReachedPage = false;
      document.addEventListener('keydown', (event) => {
        if (event.key === ' ' && !event.defaultPrevented) window.spaceReachedPage = true;
      });
    });
    await page.keyboard.press('Space');
    assert.equal(await page.evaluate(() => window.spaceReachedPage), false);
    assert.equal(await page.evaluate(() => window.octaneweb.selection.current?.name), 'Scene');
    assert.deepEqual(page.problems, []);
  });

  test('the filter narrows the loaded rows and keeps their ancestors', async () => {
    const before_ = (await rows(page)).filter((r) => r.shown).length;
    await page.fill('#outliner input[type="search"]', 'SPHERE');
    await page.waitForFunction(() => /\d+ of \d+ loaded/.test(document.querySelector('#outliner .ol-count').textContent));
    const shown = (await rows(page)).filter((r) => r.shown);
    assert.ok(shown.length < before_, `${shown.length} rows shown of ${before_}`);
    const matches = shown.filter((r) => r.name.toLowerCase().includes('sphere'));
    assert.ok(matches.length >= 4, JSON.stringify(shown));
    // Everything else shown is an ancestor of a match: the root and the Geometry graph.
    const others = shown.filter((r) => !r.name.toLowerCase().includes('sphere')).map((r) => r.name);
    assert.deepEqual(others, ['Scene', 'Geometry']);
    const count = await page.textContent('#outliner .ol-count');
    assert.match(count, new RegExp(`^${matches.length} of \\d+ loaded`));
    await screenshot(page, 'outliner-3-filter');
    await page.fill('#outliner input[type="search"]', '');
    await page.waitForFunction((n) => [...document.querySelectorAll('#outliner li[role="treeitem"]')].filter((li) => li.checkVisibility()).length === n, before_);
  });

  test('rename: F2, type, Enter; the server has the new name; Esc cancels', async () => {
    const handle = await page.locator('#outliner li[aria-level="3"][data-name="Red matte"]').getAttribute('data-handle');
    const row = page.locator(`#outliner li[aria-level="3"][data-handle="${handle}"]`);
    await row.locator(':scope > .row .ol-name').click();
    await page.keyboard.press('F2');
    const input = row.locator('input.ol-rename');
    assert.equal(await input.inputValue(), 'Red matte');
    await screenshot(page, 'outliner-4-rename');
    await input.fill('Crimson matte');
    await input.press('Enter');
    await page.waitForSelector(`#outliner li[data-handle="${handle}"][data-name="Crimson matte"]`);
    const { result } = await callJson(demo.url, 'ApiItem', 'name', { objectPtr: { handle, type: 'ApiNode' } });
    assert.equal(result, 'Crimson matte');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.name), 'Crimson matte');

    await page.keyboard.press('F2');
    await row.locator('input.ol-rename').fill('Not this');
    await row.locator('input.ol-rename').press('Escape');
    assert.equal(await row.locator('input.ol-rename').count(), 0);
    assert.equal(await row.locator(':scope > .row .ol-name').textContent(), 'Crimson matte');
    assert.equal((await callJson(demo.url, 'ApiItem', 'name', { objectPtr: { handle, type: 'ApiNode' } })).result, 'Crimson matte');
    assert.deepEqual(page.problems, []);
  });

  test('delete: a material goes after a confirm; a mesh is refused with the server message', async () => {
    const copper = page.locator('#outliner li[aria-level="3"][data-name="Copper"]');
    await copper.locator(':scope > .row .ol-name').click();
    await page.keyboard.press('Delete');
    const confirm = copper.locator('.ol-confirm');
    await confirm.waitFor();
    // Esc backs out and nothing is deleted.
    await page.keyboard.press('Escape');
    assert.equal(await confirm.count(), 0);
    await page.keyboard.press('Delete');
    await screenshot(page, 'outliner-5-delete-confirm');
    await copper.locator('.ol-confirm button:has-text("Delete")').click();
    await page.waitForFunction(() => !document.querySelector('#outliner li[data-name="Copper"]'));
    const materials = await graphRef(demo.url, 'Materials');
    const names = await ownedNames(demo.url, materials);
    assert.ok(!names.includes('Copper') && names.includes('Gold'), JSON.stringify(names));
    // The graph was read again and is still open.
    await page.waitForSelector('#outliner li[aria-level="2"][data-name="Materials"][aria-expanded="true"] li[data-name="Gold"]');

    // A mesh belongs to the built-in scene: the server refuses, the row stays.
    const floor = page.locator('#outliner li[aria-level="3"][data-name="Floor"]');
    await floor.locator(':scope > .row .ol-name').click();
    await floor.locator(':scope > .row button[data-action="delete"]').click();
    await floor.locator('.ol-confirm button:has-text("Delete")').click();
    const toast = page.locator('#toasts .toast.error').last();
    await toast.waitFor();
    assert.match(await toast.textContent(), /Could not delete “Floor”: .*mesh/i);
    assert.equal(await floor.count(), 1);
    assert.ok((await ownedNames(demo.url, await graphRef(demo.url, 'Geometry'))).includes('Floor'));
    await screenshot(page, 'outliner-6-delete-refused');
    assert.deepEqual(page.problems.filter((p) => !/status of 4\d\d/.test(p)), []);
  });

  test('a selection made elsewhere is revealed: its graph opens and the row scrolls into view', async () => {
    await topRow(page, 'Geometry').locator(':scope > .row > .ol-twisty').click();
    assert.equal(await topRow(page, 'Geometry').getAttribute('aria-expanded'), 'false');
    const { meshes } = await callJson(demo.url, 'LiveLink', 'GetMeshes');
    const torus = meshes.find((m) => m.name === 'Copper torus');
    // As the viewport's pick does.
    await page.evaluate((handle) => window.octaneweb.selection.select({ handle, type: 'ApiNode' }, { name: 'Copper torus', source: 'pick' }), String(torus.objectHandle));
    const row = page.locator(`#outliner li[data-handle="${torus.objectHandle}"][aria-selected="true"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('aria-level'), '3');
    assert.equal(await topRow(page, 'Geometry').getAttribute('aria-expanded'), 'true');
    await page.waitForFunction((h) => {
      const r = document.querySelector(`#outliner li[data-handle="${h}"] > .row`).getBoundingClientRect();
      const panel = document.getElementById('panel-scene').getBoundingClientRect();
      return r.top >= panel.top && r.bottom <= panel.bottom;
    }, String(torus.objectHandle));
    await screenshot(page, 'outliner-7-revealed');

    // The mesh list selects the same way.
    await page.click('#outliner details.ol-meshes > summary');
    const box = meshes.find((m) => m.name === 'Blue box');
    await page.click(`#mesh-list button[data-handle="${box.objectHandle}"]`);
    await page.locator(`#outliner li[role="treeitem"][data-handle="${box.objectHandle}"][aria-selected="true"]`).waitFor();
    assert.equal(await page.evaluate(() => window.octaneweb.selection.current?.name), 'Blue box');
  });

  test('a reload keeps the open rows and the selected row', async () => {
    const open = (await rows(page)).filter((r) => r.expanded === 'true').map((r) => `${r.level} ${r.name}`);
    const selected = (await rows(page)).filter((r) => r.selected).map((r) => r.handle);
    assert.equal(selected.length, 1);
    // Two loads at once end in one tree.
    await page.evaluate(() => Promise.all([window.octaneweb.outliner.load(), window.octaneweb.outliner.load()]));
    assert.equal(await page.getAttribute('#outliner', 'data-state'), 'ready');
    const after_ = await rows(page);
    assert.deepEqual(after_.filter((r) => r.expanded === 'true').map((r) => `${r.level} ${r.name}`), open);
    assert.deepEqual(after_.filter((r) => r.selected).map((r) => r.handle), selected);
    assert.equal(await page.locator('#outliner [role="tree"]').count(), 1);
    assert.equal(after_.filter((r) => r.level === 1).length, 1);
  });

  test('projectManagerChanged reloads the tree', async () => {
    await callJson(demo.url, 'ApiProjectManager', 'resetProject', { suppressUI: true });
    // The built-in scene is back: the deleted material and the old name.
    await page.waitForFunction(() => !document.querySelector('#outliner li[data-name="Crimson matte"]'), null, { timeout: 20000 });
    await page.waitForSelector('#outliner[data-state="ready"]');
    const materials = topRow(page, 'Materials');
    await expandRow(page, materials);
    const names = await materials.locator(':scope > ul > li[role="treeitem"]').evaluateAll((lis) => lis.map((li) => li.dataset.name));
    assert.ok(names.includes('Copper') && names.includes('Red matte'), JSON.stringify(names));
    await screenshot(page, 'outliner-8-reloaded');
    assert.deepEqual(page.problems.filter((p) => !/status of 4\d\d/.test(p)), []);
  });

  test('on a phone: tap selects, the row has rename and delete buttons', async () => {
    const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, hasTouch: true });
    await phone.goto(demo.url);
    await phone.waitForSelector('#outliner[data-state="ready"]');
    await phone.locator('#outliner').scrollIntoViewIfNeeded();
    const materials = topRow(phone, 'Materials');
    await materials.locator(':scope > .row > .ol-twisty').tap();
    const gold = materials.locator('li[data-name="Gold"]');
    await gold.waitFor();
    await gold.locator(':scope > .row .ol-name').tap();
    assert.equal(await gold.getAttribute('aria-selected'), 'true');
    const rename = gold.locator(':scope > .row button[data-action="rename"]');
    const remove = gold.locator(':scope > .row button[data-action="delete"]');
    assert.ok(await rename.isVisible());
    assert.ok(await remove.isVisible());
    // The row fits the narrow panel: nothing sticks out to the right.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
    await gold.scrollIntoViewIfNeeded();
    await screenshot(phone, 'outliner-9-phone');
    await rename.tap();
    await gold.locator('input.ol-rename').waitFor();
    await screenshot(phone, 'outliner-10-phone-rename');
    await gold.locator('input.ol-rename').press('Escape');
    assert.deepEqual(phone.problems, []);
    await phone.context().close();
  });
});
