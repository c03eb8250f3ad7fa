// The node inspector: a node's input pins as editors built from what the server says about
// each pin (its pin info) and the value node linked into it, and the other nodes linked into
// its pins as sections to open or links to follow.
//
// Edits go to the value node's A_VALUE as the user drags (one call in flight, the newest
// value replacing any waiting one) and each gesture becomes one undo entry.

import { CoalescingSender } from './camera.js';
import { h, toast } from './dom.js';
import { isRef, readNode, refKey, setValue } from './octane.js';

/** Value updates per second while dragging a slider. */
const EDIT_RATE = 30;
/** Sliders only where the range is one a hand can drag through. */
const MAX_SLIDER_SPAN = 1e4;
/** Linked nodes opened inline at most this deep (each level is a few round trips). */
const MAX_DEPTH = 4;

const VECTOR_COMPONENTS = {
  2: ['x', 'y'],
  3: ['x', 'y', 'z'],
  4: ['x', 'y', 'z', 'w'],
};

/** How many components an attribute type carries (1 for scalars, 0 for non-numbers). */
function componentCount(attrType) {
  const match = /^AT_(FLOAT|INT|LONG)([234])?$/.exec(attrType);
  if (!match) return 0;
  return match[2] ? Number(match[2]) : 1;
}

const isIntType = (attrType) => /^AT_(INT|LONG)/.test(attrType);

/** Reads component `i` of a value in the JSON of its attribute type. */
function componentOf(data, count, i) {
  if (count <= 1) return Number(data) || 0;
  return Number(data?.[VECTOR_COMPONENTS[count][i]]) || 0;
}

/** A copy of `data` with component `i` set. */
function withComponent(data, count, i, value) {
  if (count <= 1) return value;
  const copy = {};
  for (const key of VECTOR_COMPONENTS[count]) copy[key] = Number(data?.[key]) || 0;
  copy[VECTOR_COMPONENTS[count][i]] = value;
  return copy;
}

const sameValue = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const toHex = (v) => Math.round(Math.min(1, Math.max(0, v)) * 255).toString(16).padStart(2, '0');

/** A pin's label as Octane's UI shows it. */
export function pinLabel(pin) {
  return pin.info.staticLabel || pin.info.staticName || String(pin.info.id || `pin ${pin.index}`);
}

/**
 * The editor a pin's value gets: `{kind, dims: [{name, min, max, sliderMin, sliderMax, step}], options}`.
 * `kind` is 'colour', 'numbers', 'bool', 'enum', 'text' or 'readonly'.
 */
export function editorFor(info, value, linkedType = '') {
  const attrType = value?.attrType ?? '';
  const count = componentCount(attrType);
  const dimsFrom = (numberInfo, integer) => (numberInfo.dimInfos ?? []).map((d, i) => ({
    name: d.name || ['x', 'y', 'z', 'w'][i],
    min: Number(d.minValue),
    max: Number(d.maxValue),
    sliderMin: Number(d.sliderMinValue ?? d.minValue),
    sliderMax: Number(d.sliderMaxValue ?? d.maxValue),
    step: integer ? 1 : Number(d.sliderStep) || 0,
  }));
  if (attrType === 'AT_BOOL' || info.type === 'PT_BOOL') return { kind: 'bool', dims: [] };
  if (info.enumInfo?.isValid || info.type === 'PT_ENUM') {
    return { kind: 'enum', dims: [], options: (info.enumInfo?.values ?? []).map((v) => ({ value: Number(v.value), label: v.label || String(v.value) })) };
  }
  if (attrType === 'AT_STRING' || attrType === 'AT_FILENAME') {
    return { kind: 'text', dims: [], file: Boolean(info.stringInfo?.isFile) || attrType === 'AT_FILENAME' };
  }
  if (!count) return { kind: 'readonly', dims: [] };
  const integer = isIntType(attrType);
  let dims = [];
  if (info.floatInfo?.isValid) dims = dimsFrom(info.floatInfo, integer);
  else if (info.intInfo?.isValid) dims = dimsFrom(info.intInfo, true);
  else if (info.texInfo?.isValid) {
    const t = info.texInfo;
    dims = [{ name: 'value', min: Number(t.minValue), max: Number(t.maxValue), sliderMin: Number(t.sliderMinValue), sliderMax: Number(t.sliderMaxValue), step: 0 }];
  }
  if (!dims.length) dims = Array.from({ length: count }, (_, i) => ({ name: VECTOR_COMPONENTS[count]?.[i] ?? 'value', min: -Infinity, max: Infinity, sliderMin: NaN, sliderMax: NaN, step: integer ? 1 : 0 }));
  dims = dims.slice(0, Math.max(1, count));
  const colourNames = dims.map((d) => d.name.toLowerCase()).join('') === 'rgb';
  const isColour = !integer && count >= 3 && dims.length === 3 && (info.floatInfo?.isColor || colourNames || linkedType === 'NT_TEX_RGB');
  // Octane says per pin whether a slider makes sense (a sample count does not).
  const numberInfo = info.floatInfo?.isValid ? info.floatInfo : info.intInfo?.isValid ? info.intInfo : null;
  const sliders = numberInfo ? numberInfo.useSliders !== false : true;
  return { kind: isColour ? 'colour' : 'numbers', dims, integer, count, sliders };
}

export class Inspector extends EventTarget {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.root       where the inspector draws
   * @param {import('./selection.js').Selection} opts.selection  followed links select here
   * @param {import('./undo.js').EditHistory} opts.history       every edit is recorded here
   * @param {boolean} [opts.openLinks]    open every linked node of the shown node (render settings)
   * @param {string} [opts.emptyText]
   */
  constructor({ root, selection, history, openLinks = false, emptyText = 'Select an item in the outliner or click an object in the render.' }) {
    super();
    this.root = root;
    this.selection = selection;
    this.history = history;
    this.openLinks = openLinks;
    this.emptyText = emptyText;
    this.ref = null;
    /** Editors on screen by value node handle, so undo and redo can show what they applied. */
    this.editors = new Map();
    this.generation = 0;
    this.showEmpty();
  }

  showEmpty(text = this.emptyText) {
    this.ref = null;
    this.editors.clear();
    this.root.dataset.state = 'empty';
    delete this.root.dataset.handle;
    this.root.replaceChildren(h('p', { className: 'muted inspector-empty' }, text));
  }

  /** Shows a node or graph (a reference); reloads if it is the one shown. */
  async show(ref) {
    if (!isRef(ref)) {
      this.showEmpty();
      return;
    }
    this.generation += 1;
    const generation = this.generation;
    this.ref = ref;
    this.root.dataset.state = 'loading';
    this.root.dataset.handle = refKey(ref);
    // Editors register here as they are built; the map replaces the shown one with the DOM.
    const editors = new Map();
    try {
      const section = await this.nodeSection(ref, 0, { open: true, editors });
      if (generation !== this.generation) return;
      this.editors = editors;
      this.root.replaceChildren(section);
      this.root.dataset.state = 'ready';
      this.dispatchEvent(new CustomEvent('shown', { detail: { ref } }));
    } catch (err) {
      if (generation !== this.generation) return;
      this.root.dataset.state = 'error';
      this.root.replaceChildren(h('p', { className: 'error-text', role: 'alert' }, `Could not read this item: ${err.message}`));
    }
  }

  /** Reads the shown node again (after a project change or a refused edit). */
  refresh() {
    return this.ref ? this.show(this.ref) : Promise.resolve();
  }

  /**
   * A node's section: its title and pins; linked nodes become nested sections. `editors`
   * collects the section's value editors by value node handle.
   */
  async nodeSection(ref, depth, { open = false, pinText = '', editors }) {
    if (/Graph$/.test(String(ref.type))) return this.graphSection(ref, depth, pinText);
    const node = await readNode(ref);
    const title = h('span', { className: 'node-title' },
      pinText ? h('span', { className: 'pin-of' }, `${pinText}: `) : null,
      h('span', { className: 'node-name' }, node.name || '(unnamed)'),
      h('span', { className: 'badge node-type', title: node.info.description || '' }, node.info.type || 'node'));
    const body = h('div', { className: 'node-body' });
    if (node.value) body.append(this.valueRow({ label: 'Value', info: {}, value: node.value, linkedType: node.info.type, editors }));
    for (const pin of node.pins) body.append(await this.pinRow(pin, depth, node, editors));
    if (!node.value && !node.pins.length) body.append(h('p', { className: 'muted' }, 'This node has no inputs.'));
    if (depth === 0) {
      return h('section', {
        className: 'node-section root',
        dataset: { handle: refKey(ref), nodeType: node.info.type || '' },
        'aria-label': `${node.name} (${node.info.type})`,
      }, h('header', { className: 'inspector-head' }, title,
        h('button', { type: 'button', className: 'small ghost', title: 'Read this node again', onclick: () => this.refresh() }, 'Reload')), body);
    }
    const details = h('details', { className: 'node-section', dataset: { handle: refKey(ref), nodeType: node.info.type || '' } },
      h('summary', {}, title,
        h('button', {
          type: 'button',
          className: 'small ghost follow',
          title: 'Show this node on its own',
          onclick: (event) => {
            event.preventDefault();
            this.selection.select(ref, { name: node.name, source: 'inspector' });
          },
        }, 'Select')),
      body);
    details.open = open;
    return details;
  }

  graphSection(ref, depth, pinText) {
    const label = pinText ? `${pinText}: graph` : 'Graph';
    const follow = h('button', {
      type: 'button',
      className: 'link',
      onclick: () => this.selection.select(ref, { source: 'inspector' }),
    }, 'open in the outliner');
    if (depth === 0) {
      return h('section', { className: 'node-section root', dataset: { handle: refKey(ref) } },
        h('header', { className: 'inspector-head' }, h('span', { className: 'node-name' }, 'Graph')),
        h('p', { className: 'muted' }, 'A graph has no pins of its own; expand it in the outliner to see its items.'));
    }
    return h('div', { className: 'pin-row link-row', dataset: { handle: refKey(ref) } }, h('span', { className: 'pin-label' }, label), follow);
  }

  async pinRow(pin, depth, node, editors) {
    const label = pinLabel(pin);
    if (pin.value) return this.valueRow({ label, info: pin.info, value: pin.value, linkedType: pin.linked?.type, pin, editors });
    if (!pin.linked) {
      return h('div', { className: 'pin-row', dataset: { pin: pin.info.id || String(pin.index) } },
        h('span', { className: 'pin-label', title: pin.info.description || '' }, label),
        h('span', { className: 'muted' }, 'not linked'));
    }
    if (pin.linked.isGraph) return this.graphSection(pin.linked.ref, depth + 1, label);
    const autoOpen = depth === 0 && (this.openLinks || node.pins.length <= 3);
    if (depth + 1 >= MAX_DEPTH) {
      return h('div', { className: 'pin-row link-row' }, h('span', { className: 'pin-label' }, label),
        h('button', { type: 'button', className: 'link', onclick: () => this.selection.select(pin.linked.ref, { name: pin.linked.name, source: 'inspector' }) },
          pin.linked.name || pin.linked.type));
    }
    if (autoOpen) return this.nodeSection(pin.linked.ref, depth + 1, { open: true, pinText: label, editors });
    // Closed sections read their node when first opened.
    const placeholder = h('details', { className: 'node-section', dataset: { handle: refKey(pin.linked.ref), nodeType: pin.linked.type } },
      h('summary', {}, h('span', { className: 'node-title' },
        h('span', { className: 'pin-of' }, `${label}: `),
        h('span', { className: 'node-name' }, pin.linked.name || '(unnamed)'),
        h('span', { className: 'badge node-type' }, pin.linked.type || 'node'))),
      h('div', { className: 'node-body' }, h('p', { className: 'muted' }, 'Loading…')));
    placeholder.addEventListener('toggle', async () => {
      if (!placeholder.open || placeholder.dataset.loaded) return;
      placeholder.dataset.loaded = '1';
      try {
        placeholder.replaceWith(await this.nodeSection(pin.linked.ref, depth + 1, { open: true, pinText: label, editors }));
      } catch (err) {
        placeholder.querySelector('.node-body').replaceChildren(h('p', { className: 'error-text' }, `Could not read it: ${err.message}`));
      }
    });
    return placeholder;
  }

  /** A row editing one value node's value. */
  valueRow({ label, info, value, linkedType, pin, editors }) {
    const editor = editorFor(info, value, linkedType);
    const valueRef = value.ref;
    const row = h('div', {
      className: `pin-row value-row kind-${editor.kind}`,
      dataset: { pin: info.id || (pin ? String(pin.index) : 'value'), valueHandle: refKey(valueRef), kind: editor.kind },
    });
    const labelId = `pin-${refKey(valueRef)}-label`;
    row.append(h('span', { className: 'pin-label', id: labelId, title: info.description || '' }, label));
    const state = { data: value.data, gestureStart: null };
    const sender = new CoalescingSender(async (data) => {
      try {
        await setValue(valueRef, value.attrType, data);
      } catch (err) {
        toast(`${label}: ${err.message}`, 'error');
        // What the server holds now, on screen again.
        this.refresh();
        throw err;
      }
    }, EDIT_RATE);
    const send = (data) => {
      if (state.gestureStart === null) state.gestureStart = state.data;
      state.data = data;
      sender.push(data);
    };
    const commit = () => {
      const before = state.gestureStart;
      const after = state.data;
      state.gestureStart = null;
      if (before === null || sameValue(before, after)) return;
      this.history.push({
        label: label,
        undo: () => this.apply(valueRef, value.attrType, before),
        redo: () => this.apply(valueRef, value.attrType, after),
      });
    };
    const controls = this.controlsFor(editor, state, send, commit, labelId);
    row.append(controls.element);
    editors.set(refKey(valueRef), (data) => {
      state.data = data;
      controls.show(data);
    });
    return row;
  }

  /** Sets a value (for undo and redo) and shows it in its editor if on screen. */
  async apply(valueRef, attrType, data) {
    await setValue(valueRef, attrType, data);
    this.editors.get(refKey(valueRef))?.(data);
  }

  controlsFor(editor, state, send, commit, labelId) {
    const wrap = h('div', { className: 'pin-editor' });
    if (editor.kind === 'bool') {
      const box = h('input', { type: 'checkbox', 'aria-labelledby': labelId, checked: Boolean(state.data) });
      box.addEventListener('change', () => {
        send(box.checked);
        commit();
      });
      wrap.append(box);
      return { element: wrap, show: (data) => { box.checked = Boolean(data); } };
    }
    if (editor.kind === 'enum') {
      const select = h('select', { 'aria-labelledby': labelId }, editor.options.map((o) => h('option', { value: String(o.value) }, o.label)));
      select.value = String(state.data);
      select.addEventListener('change', () => {
        send(Number(select.value));
        commit();
      });
      wrap.append(select);
      return { element: wrap, show: (data) => { select.value = String(data); } };
    }
    if (editor.kind === 'text') {
      const input = h('input', { type: 'text', 'aria-labelledby': labelId, value: String(state.data ?? ''), placeholder: editor.file ? 'path on the render server' : '' });
      input.addEventListener('change', () => {
        send(input.value);
        commit();
      });
      wrap.append(input);
      return { element: wrap, show: (data) => { input.value = String(data ?? ''); } };
    }
    if (editor.kind === 'readonly') {
      wrap.append(h('code', { className: 'muted' }, JSON.stringify(state.data)));
      return { element: wrap, show: () => {} };
    }
    const { count } = editor;
    const showers = [];
    if (editor.kind === 'colour') {
      const picker = h('input', { type: 'color', 'aria-labelledby': labelId, className: 'colour' });
      const paint = (data) => {
        picker.value = `#${[0, 1, 2].map((i) => toHex(componentOf(data, count, i))).join('')}`;
      };
      paint(state.data);
      picker.addEventListener('input', () => {
        const hex = picker.value;
        let data = state.data;
        [1, 3, 5].forEach((offset, i) => {
          data = withComponent(data, count, i, parseInt(hex.slice(offset, offset + 2), 16) / 255);
        });
        send(data);
        showers.forEach((show) => show(data));
      });
      picker.addEventListener('change', commit);
      wrap.append(picker);
      showers.push(paint);
    }
    const usable = (dim) => editor.sliders && editor.kind !== 'colour' && Number.isFinite(dim.sliderMin) && Number.isFinite(dim.sliderMax)
      && dim.sliderMax > dim.sliderMin && dim.sliderMax - dim.sliderMin <= MAX_SLIDER_SPAN;
    // Components without sliders sit side by side (x y z), with sliders one per line.
    const dims = h('div', { className: `dims${editor.dims.length > 1 && !editor.dims.some(usable) ? ' row' : ''}` });
    editor.dims.forEach((dim, i) => {
      const name = editor.dims.length > 1 ? dim.name : '';
      const number = h('input', {
        type: 'number',
        'aria-label': name ? `${name}` : 'value',
        'aria-describedby': labelId,
        step: editor.integer ? '1' : dim.step > 0 ? String(dim.step) : 'any',
        min: Number.isFinite(dim.min) ? String(dim.min) : null,
        max: Number.isFinite(dim.max) ? String(dim.max) : null,
      });
      const slider = usable(dim) ? h('input', {
        type: 'range',
        'aria-label': `${name || 'value'} slider`,
        'aria-describedby': labelId,
        min: String(dim.sliderMin),
        max: String(dim.sliderMax),
        step: editor.integer ? '1' : dim.step > 0 ? String(dim.step) : String((dim.sliderMax - dim.sliderMin) / 1000),
      }) : null;
      const show = (data) => {
        const v = componentOf(data, count, i);
        if (document.activeElement !== number) number.value = String(editor.integer ? Math.round(v) : Number(v.toPrecision(6)));
        if (slider) slider.value = String(v);
      };
      show(state.data);
      showers.push(show);
      const read = (text) => {
        let v = Number(text);
        if (!Number.isFinite(v)) return null;
        if (editor.integer) v = Math.round(v);
        return v;
      };
      slider?.addEventListener('input', () => {
        const v = read(slider.value);
        if (v === null) return;
        const data = withComponent(state.data, count, i, v);
        send(data);
        showers.forEach((s) => s(data));
      });
      slider?.addEventListener('change', commit);
      number.addEventListener('change', () => {
        const v = read(number.value);
        if (v === null) {
          show(state.data);
          return;
        }
        const data = withComponent(state.data, count, i, v);
        send(data);
        showers.forEach((s) => s(data));
        commit();
      });
      dims.append(h('label', { className: 'dim' }, name ? h('span', { className: 'dim-name' }, name) : null, slider, number));
    });
    wrap.append(dims);
    return { element: wrap, show: (data) => showers.forEach((s) => s(data)) };
  }
}
