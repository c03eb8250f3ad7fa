// Scene outliner: the root graph, the items each graph owns, and under a node the nodes
// linked into its pins (as Octane's outliner lists them), read lazily a level at a time
// through octane.js (a few /batch round trips per level, whatever its size). Rows can be
// selected (for the inspector, through the shared Selection), filtered, renamed and deleted;
// a selection made elsewhere is found by reading graphs level by level.
//
// The tree follows the ARIA tree pattern: the treeitems hold the focus (one tabindex 0 at a
// time), arrow keys move and expand, Enter selects, F2 renames, Delete asks to delete.

import { h, toast } from './dom.js';
import { camera, isRef, items, linkedInputs, ownedItems, project, refKey } from './octane.js';

/** Children read per level: a real scene's graph can own thousands of items. */
const MAX_CHILDREN = 500;
/** Graph levels read while looking for an item selected elsewhere. */
const REVEAL_DEPTH = 8;
/** Graphs read at most while looking for it, so a huge scene is not walked entirely. */
const REVEAL_GRAPHS = 64;

const ITEM = 'li[role="treeitem"]';

/** 'PT_MATERIAL' -> 'material', 'NT_MAT_DIFFUSE' -> 'mat diffuse': a short badge. */
function shortType(type) {
  return String(type ?? '').replace(/^(PT|NT)_/, '').replace(/_/g, ' ').toLowerCase();
}

/** A path segment names an item under its parent; a pin label keeps two links to one node apart. */
function segment(key, pinLabel) {
  return pinLabel ? `${encodeURIComponent(pinLabel)}>${key}` : key;
}

function setRowName(li, name) {
  li.entry.name = name;
  li.dataset.name = name;
  const label = li.querySelector(':scope > .row > .ol-name');
  if (label) label.textContent = name || '(unnamed)';
}

/**
 * Scrolls the box the tree scrolls in (the side panel) so a row out of sight comes to its
 * middle. The window itself is left alone: on a phone the panel is below the viewport, and a
 * pick in the viewport must not pull the page away from it.
 */
function scrollToRow(row) {
  if (!row) return;
  for (let up = row.parentElement; up; up = up.parentElement) {
    if (!/(auto|scroll)/.test(getComputedStyle(up).overflowY) || up.scrollHeight <= up.clientHeight) continue;
    const frame = up.getBoundingClientRect();
    const box = row.getBoundingClientRect();
    if (box.top < frame.top || box.bottom > frame.bottom) up.scrollTop += box.top - frame.top - (frame.height - box.height) / 2;
    return;
  }
}

export class Outliner extends EventTarget {
  /**
   * `root`: an empty element the outliner fills (filter, tree, meshes); `selection`: the
   * shared Selection. Emits 'renamed' and 'deleted' ({ref, name}) after the server accepted
   * them, and 'load' ({state}) when a (re)load ends.
   */
  constructor({ root, selection }) {
    super();
    this.root = root;
    this.selection = selection;
    /** Paths of expanded rows, kept across reloads (handles are stable until a project load). */
    this.expanded = new Set();
    /** Rows the filter opened, closed again when it is cleared. */
    this.filterOpened = new Set();
    /** The path of the selected row, so the same row (of several showing one item) stays selected. */
    this.selectedPath = '';
    this.loading = null;
    this.reloadAgain = false;
    this.revealToken = 0;
    this.revealAfterLoad = false;
    this.rootItem = null;

    const filterId = `${root.id || 'outliner'}-filter`;
    this.filterInput = h('input', {
      id: filterId,
      type: 'search',
      placeholder: 'type to filter loaded items',
      autocomplete: 'off',
      spellcheck: 'false',
      'aria-describedby': `${filterId}-count`,
      oninput: () => this.applyFilter(),
      onkeydown: (event) => {
        // Down from the filter goes into the tree, as in a combobox.
        if (event.key === 'ArrowDown') {
          event.preventDefault();
          this.visibleItems()[0]?.focus();
        }
      },
    });
    this.filterCount = h('span', { id: `${filterId}-count`, className: 'ol-count', 'aria-live': 'polite' });
    this.status = h('p', { className: 'ol-status muted', role: 'status' });
    this.tree = h('ul', { role: 'tree', 'aria-label': 'Scene tree', className: 'ol-tree' });
    this.meshList = h('ul', { id: 'mesh-list', className: 'ol-mesh-list', 'aria-label': 'Meshes', dataset: { state: 'idle' } });
    this.meshCount = h('span', { className: 'ol-count' });
    this.meshes = h('details', { className: 'ol-meshes' }, h('summary', {}, 'Meshes ', this.meshCount), this.meshList);

    root.classList.add('ol');
    root.replaceChildren(
      h('div', { className: 'ol-filter' },
        h('label', { for: filterId }, 'Filter'),
        this.filterInput,
        this.filterCount),
      this.status,
      this.tree,
      this.meshes,
    );
    root.dataset.state = 'idle';

    this.tree.addEventListener('click', (event) => this.onClick(event));
    this.tree.addEventListener('dblclick', (event) => {
      const li = this.itemOf(event.target);
      if (li && event.target.closest('.row') && !event.target.closest('button, input')) this.toggle(li);
    });
    this.tree.addEventListener('keydown', (event) => this.onKey(event));
    this.meshList.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-handle]');
      // A mesh is a node: selecting it reveals it in the tree (owned by the geometry graph).
      if (button) this.selection.select({ handle: button.dataset.handle, type: 'ApiNode' }, { name: button.dataset.name, source: 'outliner-meshes' });
    });
    selection.addEventListener('change', (event) => {
      const fromHere = event.detail?.source === 'outliner';
      // Rows being read now replace the shown ones: look for the item once they are in.
      if (!fromHere && this.root.dataset.state === 'loading') this.revealAfterLoad = true;
      this.showSelection({ reveal: !fromHere });
    });
  }

  // --- loading ---

  /**
   * (Re)loads the tree and the mesh list, keeping expanded rows and the selection where the
   * same handles exist. Called while a load runs, it loads once more afterwards (the scene
   * may have changed after the running load read it) and resolves when that is done.
   */
  load() {
    if (this.loading) {
      this.reloadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.reloadAgain = false;
        await Promise.all([this.loadTree(), this.loadMeshes()]);
      } while (this.reloadAgain);
    })().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  async loadTree() {
    this.root.dataset.state = 'loading';
    this.tree.setAttribute('aria-busy', 'true');
    // A reload keeps the old rows on screen until the new ones are read.
    if (!this.rootItem) this.setStatus('Loading scene…');
    try {
      const rootRef = await project.rootGraph();
      // The root's own name is read beside its items rather than before them.
      const naming = items.name(rootRef).catch(() => '');
      const rootItem = this.makeItem({ ref: rootRef, name: '', isGraph: true, pinLabel: '', level: 1, path: refKey(rootRef) });
      this.expanded.add(rootItem.entry.path);
      // Built aside, so the shown tree is swapped whole.
      const aside = h('ul', {}, rootItem);
      await Promise.all([this.expand(rootItem), naming]);
      setRowName(rootItem, (await naming) || 'Scene');
      const hadFocus = this.tree.contains(document.activeElement);
      const focusedPath = hadFocus ? this.itemOf(document.activeElement)?.entry.path : '';
      this.tree.replaceChildren(...aside.childNodes);
      this.rootItem = rootItem;
      this.setStatus('');
      // With another load to come (the scene changed meanwhile), this one is not the answer.
      this.root.dataset.state = this.reloadAgain ? 'loading' : 'ready';
      this.showSelection({ reveal: this.revealAfterLoad, scroll: this.revealAfterLoad });
      this.revealAfterLoad = false;
      const active = (focusedPath && this.findPath(focusedPath)) || this.selectedItem() || rootItem;
      this.setActive(active);
      if (hadFocus) active.focus();
      this.applyFilter();
      this.emit('load', { state: 'ready' });
    } catch (err) {
      this.rootItem = null;
      this.tree.replaceChildren();
      this.setStatus(`Could not read the scene: ${err.message}`, true);
      this.root.dataset.state = 'error';
      this.emit('load', { state: 'error', error: err });
    } finally {
      this.tree.removeAttribute('aria-busy');
    }
  }

  async loadMeshes() {
    this.meshList.dataset.state = 'loading';
    try {
      const meshes = await camera.meshes();
      this.meshCount.textContent = `(${meshes.length})`;
      this.meshList.replaceChildren(...meshes.map((mesh) => h('li', { dataset: { name: mesh.name ?? '' } },
        h('button', {
          type: 'button',
          className: 'ol-mesh',
          title: 'Select this mesh',
          dataset: { handle: String(mesh.objectHandle ?? 0), name: mesh.name ?? '' },
        }, h('span', { className: 'ol-name' }, mesh.name || '(unnamed)'), h('span', { className: 'ol-badge' }, `id ${mesh.id ?? 0}`)))));
      if (!meshes.length) this.meshList.append(h('li', { className: 'muted' }, 'No meshes'));
      this.meshList.dataset.state = 'ready';
    } catch (err) {
      this.meshCount.textContent = '';
      this.meshList.replaceChildren(h('li', { className: 'error-text' }, `Could not read the meshes: ${err.message}`));
      this.meshList.dataset.state = 'error';
    }
  }

  setStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.hidden = !text;
    this.status.classList.toggle('error-text', isError);
    this.status.classList.toggle('muted', !isError);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- rows ---

  /** One row: `entry` is `{ref, name, isGraph, pinLabel, nodeType, outType, level, path}`. */
  makeItem(entry) {
    const li = h('li', {
      role: 'treeitem',
      tabindex: '-1',
      'aria-level': entry.level,
      'aria-selected': 'false',
      // Graphs and nodes may have children; a node shows it has none once read.
      'aria-expanded': 'false',
      className: entry.isGraph ? 'graph' : 'node',
      dataset: { name: entry.name, handle: refKey(entry.ref), ...(entry.pinLabel ? { pin: entry.pinLabel } : {}) },
    });
    const type = entry.isGraph ? (entry.level > 1 ? 'graph' : '') : shortType(entry.nodeType || entry.outType);
    li.append(h('div', { className: 'row' },
      h('span', { className: 'ol-twisty', 'aria-hidden': 'true' }),
      entry.pinLabel ? h('span', { className: 'ol-pin' }, `${entry.pinLabel}:`) : null,
      h('span', { className: 'ol-name' }, entry.name || '(unnamed)'),
      type ? h('span', { className: `ol-badge${entry.isGraph ? ' ol-graph-badge' : ''}`, title: entry.nodeType || entry.outType || 'node graph' }, type) : null));
    li.entry = { ...entry, children: null };
    return li;
  }

  /** The treeitem an element is in (or is). */
  itemOf(el) {
    return el instanceof Element ? el.closest(ITEM) : null;
  }

  groupOf(li) {
    return li.querySelector(':scope > ul[role="group"]');
  }

  parentItem(li) {
    return li.parentElement?.closest(ITEM) ?? null;
  }

  childItems(li) {
    const group = this.groupOf(li);
    return group ? [...group.children].filter((c) => c.matches(ITEM)) : [];
  }

  allItems() {
    return [...this.tree.querySelectorAll(ITEM)];
  }

  findPath(path) {
    return this.allItems().find((li) => li.entry.path === path) ?? null;
  }

  /**
   * Reads a row's children into its (hidden) group once; a failed read can be retried.
   * Resolves to the child rows.
   */
  loadChildren(li) {
    if (li.entry.children) return li.entry.children;
    let group = this.groupOf(li);
    if (!group) {
      // Read ahead for a reveal, a closed row's children stay hidden.
      group = h('ul', { role: 'group', hidden: li.getAttribute('aria-expanded') !== 'true' });
      li.append(group);
    }
    group.replaceChildren(h('li', { role: 'none', className: 'ol-note muted' }, 'Loading…'));
    const { entry } = li;
    const level = entry.level + 1;
    const pending = (async () => {
      try {
        let children;
        let more = 0;
        if (entry.isGraph) {
          const { total, items: owned } = await ownedItems(entry.ref, MAX_CHILDREN);
          more = Math.max(0, total - owned.length);
          children = owned.map((item) => this.makeItem({
            ref: item.ref, name: item.name, isGraph: item.isGraph, outType: item.outType, pinLabel: '', level,
            path: `${entry.path}/${segment(refKey(item.ref))}`,
          }));
        } else {
          const inputs = await linkedInputs(entry.ref);
          more = Math.max(0, inputs.length - MAX_CHILDREN);
          children = inputs.slice(0, MAX_CHILDREN).map((input) => this.makeItem({
            ref: input.ref, name: input.name, isGraph: input.isGraph, nodeType: input.nodeType, pinLabel: input.pinLabel, level,
            path: `${entry.path}/${segment(refKey(input.ref), input.pinLabel)}`,
          }));
        }
        group.replaceChildren(...children);
        if (more) group.append(h('li', { role: 'none', className: 'ol-note muted' }, `… and ${more} more`));
        if (!children.length) {
          if (entry.isGraph) {
            group.append(h('li', { role: 'none', className: 'ol-note muted' }, 'No items'));
          } else {
            // A node with nothing linked into its pins is a leaf.
            group.remove();
            li.removeAttribute('aria-expanded');
            li.classList.add('leaf');
            this.expanded.delete(entry.path);
          }
        }
        return children;
      } catch (err) {
        group.replaceChildren(h('li', { role: 'none', className: 'ol-note error-text' }, `Could not read this ${entry.isGraph ? 'graph' : 'node'}: ${err.message}`));
        entry.children = null;
        return [];
      }
    })();
    entry.children = pending;
    return pending;
  }

  /** Opens a row, reading its children first if needed and reopening those that were open. */
  async expand(li, { focus = false } = {}) {
    if (!li.hasAttribute('aria-expanded')) return;
    li.setAttribute('aria-expanded', 'true');
    this.expanded.add(li.entry.path);
    this.groupOf(li)?.removeAttribute('hidden');
    const children = await this.loadChildren(li);
    if (li.getAttribute('aria-expanded') !== 'true') return;
    this.groupOf(li)?.removeAttribute('hidden');
    await Promise.all(children.filter((child) => this.expanded.has(child.entry.path)).map((child) => this.expand(child)));
    if (focus) li.focus();
    if (this.filterInput.value) this.applyFilter();
  }

  collapse(li) {
    if (li.getAttribute('aria-expanded') !== 'true') return;
    li.setAttribute('aria-expanded', 'false');
    this.expanded.delete(li.entry.path);
    this.groupOf(li)?.setAttribute('hidden', '');
    // Focus inside a closing row moves to it rather than into hidden rows.
    if (li.contains(document.activeElement) && document.activeElement !== li) this.focusItem(li);
  }

  toggle(li) {
    if (li.getAttribute('aria-expanded') === 'true') this.collapse(li);
    else this.expand(li);
  }

  /** Reads a row's children again (after a delete), keeping which of them were open. */
  async refresh(li) {
    li.entry.children = null;
    const open = li.getAttribute('aria-expanded') === 'true';
    await this.loadChildren(li);
    if (open) {
      li.setAttribute('aria-expanded', 'false');
      await this.expand(li);
    }
    this.showSelection({ reveal: false, scroll: false });
    this.applyFilter();
  }

  // --- focus and keys ---

  /** Rows a keyboard user can reach: not filtered out, every ancestor open. */
  visibleItems() {
    const out = [];
    const walk = (ul) => {
      for (const li of ul.children) {
        if (!li.matches(ITEM) || li.classList.contains('ol-filtered-out')) continue;
        out.push(li);
        if (li.getAttribute('aria-expanded') === 'true') {
          const group = this.groupOf(li);
          if (group) walk(group);
        }
      }
    };
    walk(this.tree);
    return out;
  }

  /** Roving tabindex: the tree is one tab stop, at the active row. */
  setActive(li) {
    for (const other of this.tree.querySelectorAll(`${ITEM}[tabindex="0"]`)) other.tabIndex = -1;
    if (li) li.tabIndex = 0;
  }

  focusItem(li) {
    if (!li) return;
    this.setActive(li);
    li.focus();
  }

  onClick(event) {
    const li = this.itemOf(event.target);
    if (!li || !event.target.closest('.row') || event.target.closest('input')) return;
    const action = event.target.closest('button[data-action]')?.dataset.action;
    if (action === 'rename') this.startRename(li);
    else if (action === 'delete') this.askDelete(li);
    else if (event.target.closest('.ol-twisty')) this.toggle(li);
    else {
      this.selectItem(li);
      this.focusItem(li);
    }
  }

  onKey(event) {
    const li = this.itemOf(event.target);
    // Keys in the rename field and the confirm buttons are theirs.
    if (!li || event.target !== li || event.ctrlKey || event.metaKey || event.altKey) return;
    const visible = this.visibleItems();
    const at = visible.indexOf(li);
    const expandable = li.hasAttribute('aria-expanded');
    const open = li.getAttribute('aria-expanded') === 'true';
    const keys = {
      ArrowDown: () => this.focusItem(visible[at + 1]),
      ArrowUp: () => this.focusItem(visible[at - 1]),
      Home: () => this.focusItem(visible[0]),
      End: () => this.focusItem(visible[visible.length - 1]),
      ArrowRight: () => {
        if (expandable && !open) this.expand(li);
        else if (open) this.focusItem(this.childItems(li).find((c) => !c.classList.contains('ol-filtered-out')));
      },
      ArrowLeft: () => {
        if (open) this.collapse(li);
        else this.focusItem(this.parentItem(li));
      },
      Enter: () => this.selectItem(li),
      ' ': () => this.selectItem(li),
      F2: () => this.startRename(li),
      Delete: () => this.askDelete(li),
    };
    const action = keys[event.key];
    if (!action) return;
    // The page's single-key shortcuts (Space pauses rendering) must not fire from the tree.
    event.preventDefault();
    event.stopPropagation();
    action();
  }

  // --- selection ---

  selectItem(li) {
    this.selectedPath = li.entry.path;
    this.selection.select(li.entry.ref, { name: li.entry.name, source: 'outliner' });
    // Selecting another row showing the same item changes nothing in the Selection.
    this.showSelection({ reveal: false });
  }

  /** The selected row: the one last chosen here if it still shows the item, else the first that does. */
  selectedItem() {
    const key = this.selection.key;
    if (!key) return null;
    const rows = this.allItems().filter((li) => li.dataset.handle === key);
    return rows.find((li) => li.entry.path === this.selectedPath) ?? rows.find((li) => !li.entry.pinLabel) ?? rows[0] ?? null;
  }

  /** Marks the selected row (and, dimmer, other rows of the same item); optionally finds it. */
  showSelection({ reveal = false, scroll = true } = {}) {
    const key = this.selection.key;
    const li = this.selectedItem();
    for (const row of this.allItems()) {
      row.setAttribute('aria-selected', String(row === li));
      row.classList.toggle('ol-same', Boolean(key) && row !== li && row.dataset.handle === key);
    }
    this.placeActions(li);
    if (!key) {
      this.selectedPath = '';
      return;
    }
    if (li && this.isShown(li)) {
      this.selectedPath = li.entry.path;
      this.setActive(li);
      if (scroll) scrollToRow(li.querySelector(':scope > .row'));
    } else if (reveal) {
      this.reveal(key);
    }
  }

  isShown(li) {
    for (let up = this.parentItem(li); up; up = this.parentItem(up)) {
      if (up.getAttribute('aria-expanded') !== 'true') return false;
    }
    return true;
  }

  /**
   * Finds an item selected elsewhere: rows already read first, then graphs read level by
   * level (meshes and every node are owned by some graph), at most REVEAL_DEPTH levels and
   * REVEAL_GRAPHS graphs. Opens the rows above it and scrolls to it; gives up quietly.
   */
  async reveal(key) {
    const token = ++this.revealToken;
    const stale = () => token !== this.revealToken || this.selection.key !== key || !this.rootItem;
    let found = this.allItems().find((li) => li.dataset.handle === key && !li.entry.pinLabel);
    let frontier = this.rootItem ? [this.rootItem] : [];
    let graphsRead = 0;
    for (let depth = 0; !found && frontier.length && depth < REVEAL_DEPTH; depth += 1) {
      const batch = frontier.slice(0, Math.max(0, REVEAL_GRAPHS - graphsRead));
      graphsRead += batch.length;
      const levels = await Promise.all(batch.map((li) => this.loadChildren(li)));
      if (stale()) return;
      const children = levels.flat();
      found = children.find((li) => li.dataset.handle === key);
      frontier = children.filter((li) => li.entry.isGraph);
    }
    if (!found || stale()) return;
    const chain = [];
    for (let up = this.parentItem(found); up; up = this.parentItem(up)) chain.unshift(up);
    for (const up of chain) {
      up.setAttribute('aria-expanded', 'true');
      this.expanded.add(up.entry.path);
      this.groupOf(up)?.removeAttribute('hidden');
    }
    this.selectedPath = found.entry.path;
    this.applyFilter();
    this.showSelection({ reveal: false });
  }

  // --- the selected row's buttons (touch has no F2 or Delete key) ---

  placeActions(li) {
    this.actions?.remove();
    if (!li) return;
    const name = li.entry.name || 'item';
    this.actions = h('span', { className: 'ol-actions' },
      h('button', { type: 'button', className: 'small ghost', tabindex: '-1', dataset: { action: 'rename' }, 'aria-label': `Rename ${name} (F2)`, title: 'Rename (F2)' }, '✎'),
      h('button', { type: 'button', className: 'small ghost danger', tabindex: '-1', dataset: { action: 'delete' }, 'aria-label': `Delete ${name} (Delete)`, title: 'Delete (Delete)' }, '✕'));
    li.querySelector(':scope > .row').append(this.actions);
  }

  // --- rename ---

  startRename(li) {
    const row = li.querySelector(':scope > .row');
    const label = row.querySelector(':scope > .ol-name');
    if (!label) return;
    const { entry } = li;
    const before = entry.name;
    const input = h('input', { type: 'text', className: 'ol-rename', value: before, 'aria-label': `New name for ${before || 'the item'}`, spellcheck: 'false' });
    label.replaceWith(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (commit) => {
      if (finished) return;
      finished = true;
      const name = input.value;
      input.replaceWith(label);
      if (li.isConnected) this.focusItem(li);
      if (!commit || name === before) return;
      label.textContent = name || '(unnamed)';
      try {
        await items.rename(entry.ref, name);
        this.applyName(entry.ref, name);
        this.emit('renamed', { ref: entry.ref, name });
      } catch (err) {
        label.textContent = before || '(unnamed)';
        toast(`Could not rename “${before}”: ${err.message}`, 'error');
      }
    };
    input.addEventListener('keydown', (event) => {
      // The tree's keys and the page's shortcuts stay out of the field.
      event.stopPropagation();
      if (event.key === 'Enter') {
        event.preventDefault();
        finish(true);
      } else if (event.key === 'Escape') {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  /** Every row of a renamed item shows its new name. */
  applyName(ref, name) {
    const key = refKey(ref);
    for (const li of this.allItems()) {
      if (li.dataset.handle === key) setRowName(li, name);
    }
    this.applyFilter();
  }

  // --- delete ---

  askDelete(li) {
    const row = li.querySelector(':scope > .row');
    if (li.querySelector(':scope > .ol-confirm')) return;
    const { entry } = li;
    const name = entry.name || 'this item';
    const cancel = () => {
      bar.remove();
      this.focusItem(li);
    };
    const yes = h('button', { type: 'button', className: 'small danger', onclick: () => this.destroy(li, bar) }, 'Delete');
    // A line of its own under the row, so a narrow row keeps its name readable.
    const bar = h('div', { className: 'ol-confirm', role: 'group', 'aria-label': `Delete ${name}?` },
      h('span', { className: 'ol-confirm-text' }, `Delete “${name}”${entry.isGraph ? ' and everything in it' : ''}?`),
      // The two buttons wrap together, never one without the other.
      h('span', { className: 'ol-confirm-buttons' }, yes, h('button', { type: 'button', className: 'small', onclick: cancel }, 'Cancel')));
    bar.addEventListener('keydown', (event) => {
      event.stopPropagation();
      if (event.key === 'Escape') {
        event.preventDefault();
        cancel();
      }
    });
    row.after(bar);
    yes.focus();
  }

  async destroy(li, bar) {
    const { entry } = li;
    const key = refKey(entry.ref);
    bar.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    try {
      await items.destroy(entry.ref);
    } catch (err) {
      bar.remove();
      this.focusItem(li);
      toast(`Could not delete “${entry.name}”: ${err.message}`, 'error', 8000);
      return;
    }
    bar.remove();
    // The item and every link to it are gone: its rows go, focus goes to a neighbour, and
    // the graph that owned it is read again.
    const visible = this.visibleItems();
    const at = visible.indexOf(li);
    const owner = this.ownerGraph(li);
    const gone = this.allItems().filter((row) => row.dataset.handle === key);
    const next = visible.slice(at + 1).find((row) => !gone.some((g) => g.contains(row)))
      ?? visible.slice(0, at).reverse().find((row) => !gone.some((g) => g.contains(row)));
    for (const row of gone) row.remove();
    if (this.selection.key === key) this.selection.clear();
    this.emit('deleted', { ref: entry.ref, name: entry.name });
    toast(`Deleted “${entry.name}”`, 'ok', 2500);
    if (next?.isConnected) this.focusItem(next);
    if (owner?.isConnected) await this.refresh(owner);
  }

  /** The graph row that owns a row: its parent for an owned item, further up for a linked one. */
  ownerGraph(li) {
    let up = this.parentItem(li);
    while (up && !up.entry.isGraph) up = this.parentItem(up);
    return up;
  }

  // --- filter ---

  /**
   * Shows loaded rows whose name contains the text (case-insensitive) and the rows above
   * them; rows above a match that were closed are opened until the filter is cleared.
   */
  applyFilter() {
    const text = this.filterInput.value.trim().toLowerCase();
    const rows = this.allItems();
    this.tree.classList.toggle('ol-filtering', Boolean(text));
    if (!text) {
      for (const li of rows) li.classList.remove('ol-filtered-out', 'ol-match');
      for (const li of this.filterOpened) if (li.isConnected) this.collapse(li);
      this.filterOpened.clear();
      this.filterCount.textContent = '';
      return;
    }
    const keep = new Set();
    let matches = 0;
    // Reverse document order meets every row after the rows below it.
    for (const li of rows.reverse()) {
      const match = (li.entry.name || '').toLowerCase().includes(text);
      li.classList.toggle('ol-match', match);
      if (match) matches += 1;
      if (match || keep.has(li)) {
        keep.add(li);
        const up = this.parentItem(li);
        if (up) keep.add(up);
      }
    }
    for (const li of rows) {
      li.classList.toggle('ol-filtered-out', !keep.has(li));
      const below = this.childItems(li).some((c) => keep.has(c));
      if (below && li.getAttribute('aria-expanded') === 'false') {
        li.setAttribute('aria-expanded', 'true');
        this.groupOf(li)?.removeAttribute('hidden');
        this.filterOpened.add(li);
      }
    }
    this.filterCount.textContent = `${matches} of ${rows.length} loaded`;
  }
}
