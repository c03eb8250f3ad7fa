// Scene outliner: the node tree from ApiProjectManager.rootNodeGraph, walked lazily with
// ApiNodeGraph.getOwnedItems -> ApiItemArray.size/get -> ApiItem.name/isGraph/outType, and
// the mesh list from LiveLink.GetMeshes.
//
// A level costs four round trips whatever its size: getOwnedItems, size, one POST /batch
// of every get, one POST /batch of every item's name/isGraph/outType. Against a gateway
// without /batch it falls back to single calls, a few at a time.

import { batch, call } from './api.js';
import { h } from './dom.js';

/** Children shown per graph; a real scene can own thousands of items. */
const MAX_CHILDREN = 500;
/** Calls in flight at once while reading a graph's items. */
const CONCURRENCY = 6;

/** Runs `work` over `items` with at most `limit` promises pending. */
async function mapLimited(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await work(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function pinTypeLabel(value) {
  if (value === undefined || value === null || value === '') return 'PT_UNKNOWN';
  return String(value);
}

/** Reads one item: its name, whether it is a graph, and its output type. */
async function describeItem(ref) {
  const [name, isGraph, outType] = await Promise.all([
    call('ApiItem', 'name', { objectPtr: ref }).then((d) => d.result ?? ''),
    call('ApiItem', 'isGraph', { objectPtr: ref }).then((d) => Boolean(d.result)),
    call('ApiItem', 'outType', { objectPtr: ref }).then((d) => pinTypeLabel(d.result)),
  ]);
  return { ref, name, isGraph, outType };
}

/** The data of a batch answer, or its error thrown. */
function dataOf(result) {
  if (!result.ok) throw result.error;
  return result.data;
}

/** Reads every item of `list` at `indices` and describes them, in two batches. */
async function describeItemsBatched(list, indices) {
  const gets = await batch(indices.map((index) => ({ service: 'ApiItemArray', method: 'get', params: { objectPtr: list, index } })));
  const refs = gets.map((result) => dataOf(result).result);
  const questions = refs.flatMap((ref) => ['name', 'isGraph', 'outType'].map((method) => ({ service: 'ApiItem', method, params: { objectPtr: ref } })));
  const answers = await batch(questions);
  return refs.map((ref, i) => {
    const [name, isGraph, outType] = answers.slice(i * 3, i * 3 + 3).map(dataOf);
    return { ref, name: name.result ?? '', isGraph: Boolean(isGraph.result), outType: pinTypeLabel(outType.result) };
  });
}

/** False once the gateway answered that it has no /batch; single calls from then on. */
let batchAvailable = true;

/** The items a graph owns, at most MAX_CHILDREN of them, plus the full count. */
async function ownedItems(graphRef) {
  const owned = await call('ApiNodeGraph', 'getOwnedItems', { objectPtr: graphRef });
  const list = owned.list;
  if (!list) return { total: 0, items: [] };
  const size = await call('ApiItemArray', 'size', { objectPtr: list });
  const total = Number(size.result) || 0;
  const indices = Array.from({ length: Math.min(total, MAX_CHILDREN) }, (_, i) => i);
  if (batchAvailable && indices.length) {
    try {
      return { total, items: await describeItemsBatched(list, indices) };
    } catch (err) {
      // Only a missing route means "no batching here"; other errors are the answer.
      if (![404, 405, 501].includes(err.status) || !err.message.startsWith('batch:')) throw err;
      batchAvailable = false;
    }
  }
  const items = await mapLimited(indices, CONCURRENCY, async (index) => {
    const got = await call('ApiItemArray', 'get', { objectPtr: list, index });
    return describeItem(got.result);
  });
  return { total, items };
}

export class Outliner {
  constructor({ tree, meshes }) {
    this.tree = tree;
    this.meshes = meshes;
    this.loading = null;
  }

  /** (Re)loads the tree's top level and the mesh list; safe to call while loading. */
  load() {
    if (!this.loading) {
      this.loading = Promise.all([this.loadTree(), this.loadMeshes()]).finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  async loadTree() {
    this.tree.dataset.state = 'loading';
    this.tree.replaceChildren(h('p', { className: 'muted' }, 'Loading scene…'));
    try {
      const root = await call('ApiProjectManager', 'rootNodeGraph', {});
      if (!root.result) throw new Error('rootNodeGraph returned no graph');
      const list = h('ul', { role: 'tree', 'aria-label': 'Scene graph', className: 'tree' });
      const rootItem = this.treeItem({ ref: root.result, name: 'Root graph', isGraph: true, outType: '' }, 1);
      list.append(rootItem);
      this.tree.replaceChildren(list);
      await this.expand(rootItem);
      this.tree.dataset.state = 'ready';
    } catch (err) {
      this.tree.dataset.state = 'error';
      this.tree.replaceChildren(h('p', { className: 'error-text', role: 'alert' }, `Could not read the scene: ${err.message}`));
    }
  }

  treeItem(item, level) {
    const li = h('li', {
      role: 'treeitem',
      'aria-level': level,
      'aria-expanded': item.isGraph ? 'false' : false,
      dataset: { name: item.name, handle: String(item.ref?.handle ?? '') },
      className: item.isGraph ? 'graph' : 'leaf',
    });
    const label = h('span', { className: 'name' }, item.name || '(unnamed)');
    const badges = [];
    if (item.outType) badges.push(h('span', { className: 'badge', title: 'Output type' }, item.outType.replace(/^PT_/, '').toLowerCase()));
    if (item.isGraph && level > 1) badges.push(h('span', { className: 'badge graph-badge' }, 'graph'));
    const row = item.isGraph
      ? h('button', {
        type: 'button',
        className: 'row',
        'aria-label': `${item.name || 'graph'}, graph; expand`,
        onclick: () => this.toggle(li),
      }, h('span', { className: 'twisty', 'aria-hidden': 'true' }), label, badges)
      : h('div', { className: 'row' }, h('span', { className: 'twisty none', 'aria-hidden': 'true' }), label, badges);
    li.append(row);
    li.item = item;
    li.level = level;
    return li;
  }

  async toggle(li) {
    if (li.getAttribute('aria-expanded') === 'true') {
      li.setAttribute('aria-expanded', 'false');
      li.querySelector(':scope > ul')?.setAttribute('hidden', '');
      return;
    }
    await this.expand(li);
  }

  async expand(li) {
    li.setAttribute('aria-expanded', 'true');
    const existing = li.querySelector(':scope > ul');
    if (existing) {
      existing.removeAttribute('hidden');
      return;
    }
    const group = h('ul', { role: 'group' }, h('li', { className: 'muted' }, 'Loading…'));
    li.append(group);
    try {
      const { total, items } = await ownedItems(li.item.ref);
      group.replaceChildren(...items.map((item) => this.treeItem(item, li.level + 1)));
      if (total > items.length) group.append(h('li', { className: 'muted' }, `… and ${total - items.length} more`));
      if (total === 0) group.append(h('li', { className: 'muted' }, 'No items'));
    } catch (err) {
      group.replaceChildren(h('li', { className: 'error-text' }, `Could not read this graph: ${err.message}`));
    }
  }

  async loadMeshes() {
    this.meshes.dataset.state = 'loading';
    try {
      const data = await call('LiveLink', 'GetMeshes', {});
      const meshes = Array.isArray(data.meshes) ? data.meshes : [];
      this.meshes.replaceChildren(...meshes.map((mesh) => h('li', { dataset: { name: mesh.name ?? '' } },
        h('span', { className: 'name' }, mesh.name || '(unnamed)'),
        h('span', { className: 'badge', title: `Object handle ${mesh.objectHandle ?? 0}` }, `id ${mesh.id ?? 0}`))));
      if (!meshes.length) this.meshes.append(h('li', { className: 'muted' }, 'No meshes'));
      this.meshes.dataset.state = 'ready';
    } catch (err) {
      this.meshes.dataset.state = 'error';
      this.meshes.replaceChildren(h('li', { className: 'error-text' }, `Could not read the meshes: ${err.message}`));
    }
  }
}
