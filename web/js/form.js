// Request forms generated from the /schema JSON: every editor is `{el, get(), set(value)}`,
// where get() returns the proto3 JSON value (undefined = leave the field out) and throws
// FormError naming the field when the input is invalid, and set() fills the form from JSON.
// Nested message editors also have open(). The .proto comments the schema carries
// (`comment` on messages, fields, enums and enum values) show beside what they describe.

import { h } from './dom.js';

/** Nested messages deeper than this are edited as JSON (schemas can be recursive). */
const MAX_DEPTH = 8;

const INT64_KINDS = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const UNSIGNED_KINDS = new Set(['uint64', 'fixed64', 'uint32', 'fixed32']);
const INT32_KINDS = new Set(['int32', 'sint32', 'sfixed32', 'uint32', 'fixed32']);
const FLOAT_KINDS = new Set(['float', 'double']);

/** Well-known types whose proto3 JSON form is a string. */
const WKT_STRING = new Set(['google.protobuf.Timestamp', 'google.protobuf.Duration', 'google.protobuf.FieldMask']);
/** Well-known types whose JSON form is arbitrary JSON. */
const WKT_JSON = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue', 'google.protobuf.Any']);
/** Wrapper types: JSON form is the wrapped scalar. */
const WKT_WRAPPERS = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** Invalid input in a request form; `path` names the field (e.g. "objectPtr.handle"). */
export class FormError extends Error {
  constructor(path, message) {
    super(`${path || 'request'}: ${message}`);
    this.name = 'FormError';
    this.path = path;
  }
}

let idCounter = 0;
const nextId = () => {
  idCounter += 1;
  return `f${idCounter}`;
};

function join(path, name) {
  return path ? `${path}.${name}` : name;
}

/** A field's value from JSON written with either the proto name or the JSON name. */
function pick(object, field) {
  if (!object || typeof object !== 'object') return undefined;
  if (field.name in object) return object[field.name];
  if (field.json_name in object) return object[field.json_name];
  return undefined;
}

function setInvalid(input, problem) {
  input.setAttribute('aria-invalid', problem ? 'true' : 'false');
  input.title = problem || '';
}

/** A text/number input for one scalar kind. */
function scalarEditor(kind, path, id, { optionalBool = false } = {}) {
  if (kind === 'bool') {
    if (optionalBool) {
      const select = h('select', { id, 'aria-label': path }, h('option', { value: '' }, '(unset)'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      return {
        el: select,
        get: () => (select.value === '' ? undefined : select.value === 'true'),
        set: (v) => { select.value = v === undefined || v === null ? '' : String(Boolean(v)); },
      };
    }
    const box = h('input', { id, type: 'checkbox', 'aria-label': path });
    return { el: box, get: () => (box.checked ? true : undefined), set: (v) => { box.checked = Boolean(v); } };
  }
  const input = h('input', { id, type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: placeholderFor(kind), 'aria-label': `${path} (${kind})` });
  if (INT32_KINDS.has(kind) || INT64_KINDS.has(kind) || FLOAT_KINDS.has(kind)) input.inputMode = FLOAT_KINDS.has(kind) ? 'decimal' : 'numeric';
  const get = () => {
    const text = input.value.trim();
    if (text === '') {
      setInvalid(input, '');
      return undefined;
    }
    try {
      const value = parseScalar(kind, text, path);
      setInvalid(input, '');
      return value;
    } catch (err) {
      setInvalid(input, err.message);
      throw err;
    }
  };
  input.addEventListener('change', () => {
    try {
      get();
    } catch {
      // Marked invalid; the call reports it.
    }
  });
  return {
    el: input,
    get,
    set: (v) => { input.value = v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v); },
  };
}

function placeholderFor(kind) {
  if (INT64_KINDS.has(kind)) return `${kind} (digits)`;
  if (kind === 'bytes') return 'base64';
  return kind;
}

/** Parses one scalar typed into a form, following proto3 JSON (64-bit integers as strings). */
export function parseScalar(kind, text, path) {
  if (kind === 'string') return text;
  if (kind === 'bytes') {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new FormError(path, 'not base64');
    return text;
  }
  if (INT64_KINDS.has(kind)) {
    const unsigned = UNSIGNED_KINDS.has(kind);
    if (!(unsigned ? /^\d+$/ : /^-?\d+$/).test(text)) throw new FormError(path, `not ${unsigned ? 'an unsigned' : 'an'} integer`);
    const big = BigInt(text);
    const [min, max] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
    if (big < min || big > max) throw new FormError(path, `out of range for ${kind}`);
    return big.toString();
  }
  if (INT32_KINDS.has(kind)) {
    if (!/^-?\d+$/.test(text)) throw new FormError(path, 'not an integer');
    const n = Number(text);
    const [min, max] = UNSIGNED_KINDS.has(kind) ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
    if (n < min || n > max) throw new FormError(path, `out of range for ${kind}`);
    return n;
  }
  if (FLOAT_KINDS.has(kind)) {
    if (['NaN', 'Infinity', '-Infinity'].includes(text)) return text;
    const n = Number(text);
    if (!Number.isFinite(n)) throw new FormError(path, 'not a number');
    return n;
  }
  throw new FormError(path, `unsupported field kind ${kind}`);
}

function enumEditor(schema, typeName, path, id) {
  const values = schema.enums[typeName]?.values || [];
  const select = h('select', { id, 'aria-label': `${path} (${shortName(typeName)})`, title: schema.enums[typeName]?.comment || null },
    h('option', { value: '' }, '(default)'),
    values.map((v) => h('option', { value: v.name, title: v.comment || null }, `${v.name} (${v.number})`)));
  return {
    el: select,
    get: () => (select.value === '' ? undefined : select.value),
    set: (v) => {
      if (v === undefined || v === null) select.value = '';
      else if (typeof v === 'number') select.value = values.find((x) => x.number === v)?.name ?? '';
      else select.value = String(v);
    },
  };
}

/** A textarea taking arbitrary JSON (for Struct/Any and for too-deep messages). */
function jsonEditor(path, id) {
  const area = h('textarea', { id, rows: 3, spellcheck: 'false', placeholder: 'JSON', 'aria-label': `${path} (JSON)` });
  return {
    el: area,
    get: () => {
      const text = area.value.trim();
      if (!text) return undefined;
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new FormError(path, `invalid JSON (${err.message})`);
      }
    },
    set: (v) => { area.value = v === undefined ? '' : JSON.stringify(v, null, 2); },
  };
}

/** An editor for a single (non-repeated) value of a field's type. */
function valueEditor(schema, kind, typeName, path, depth, id, opts = {}) {
  if (kind === 'enum') return enumEditor(schema, typeName, path, id);
  if (kind === 'message') {
    if (WKT_STRING.has(typeName)) return scalarEditor('string', path, id);
    if (WKT_JSON.has(typeName)) return jsonEditor(path, id);
    if (WKT_WRAPPERS[typeName]) return scalarEditor(WKT_WRAPPERS[typeName], path, id, { optionalBool: true });
    if (depth >= MAX_DEPTH || !schema.messages[typeName]) return jsonEditor(path, id);
    return messageEditor(schema, typeName, path, depth + 1, opts);
  }
  return scalarEditor(kind, path, id, opts);
}

/** The value a repeated element or selected oneof member gets when its editor is empty. */
function defaultFor(kind) {
  if (kind === 'message') return {};
  if (kind === 'bool') return false;
  if (kind === 'string' || kind === 'bytes') return '';
  if (INT64_KINDS.has(kind)) return '0';
  if (kind === 'enum') return 0;
  return 0;
}

function typeHint(field) {
  if (field.kind === 'map') return `map<${field.map?.key_kind}, ${shortName(field.map?.value_type_name) || field.map?.value_kind}>`;
  const base = field.type_name ? shortName(field.type_name) : field.kind;
  return field.repeated ? `repeated ${base}` : base;
}

/**
 * A .proto comment as prose: the source's line breaks inside a paragraph become spaces, blank
 * lines stay paragraph breaks (shown with `white-space: pre-line`).
 */
export function commentText(comment) {
  return String(comment).trim().replace(/([^\n])\n(?!\n)/g, '$1 ');
}

export function shortName(fullName) {
  if (!fullName) return '';
  const parts = fullName.split('.');
  // Keep the enclosing message for nested types ("ApiItem.nameRequest").
  return parts.length > 2 ? parts.slice(-2).join('.') : parts[parts.length - 1];
}

function fieldLabel(field, id) {
  return h('label', { for: id, className: 'field-name' },
    h('span', {}, field.name),
    h('span', { className: 'field-type' }, `${typeHint(field)} = ${field.number}`),
    field.comment ? h('span', { className: 'comment field-comment' }, commentText(field.comment)) : null);
}

/** A list editor for repeated fields (`makeItem` builds one element's editor). */
function listEditor(path, makeItem, emptyValue, label) {
  const items = [];
  const list = h('ol', { className: 'list-items' });
  const add = (value) => {
    const editor = makeItem(`${path}[${items.length}]`);
    const entry = { editor };
    const remove = h('button', { type: 'button', className: 'small ghost', 'aria-label': `Remove item from ${label}`, onclick: () => {
      items.splice(items.indexOf(entry), 1);
      entry.li.remove();
    } }, '×');
    entry.li = h('li', {}, editor.el, remove);
    items.push(entry);
    list.append(entry.li);
    if (value !== undefined) editor.set(value);
    return entry;
  };
  const addButton = h('button', { type: 'button', className: 'small', onclick: () => add(), 'aria-label': `Add item to ${label}` }, '+ Add');
  return {
    el: h('div', { className: 'list-editor' }, list, addButton),
    get: () => {
      if (!items.length) return undefined;
      return items.map((entry) => {
        const v = entry.editor.get();
        return v === undefined ? emptyValue() : v;
      });
    },
    set: (values) => {
      items.splice(0).forEach((entry) => entry.li.remove());
      if (Array.isArray(values)) values.forEach((v) => add(v));
    },
  };
}

function mapEditor(schema, field, path, depth) {
  const map = field.map || {};
  const valueKind = map.value_kind;
  const makeItem = (itemPath) => {
    const keyId = nextId();
    const key = scalarEditor('string', `${itemPath}.key`, keyId);
    key.el.placeholder = `key (${map.key_kind})`;
    key.el.setAttribute('aria-label', `${field.name} key`);
    const value = valueEditor(schema, valueKind, map.value_type_name, `${itemPath}.value`, depth, nextId());
    value.el.setAttribute?.('aria-label', `${field.name} value`);
    return {
      el: h('div', { className: 'map-entry' }, key.el, h('span', { 'aria-hidden': 'true' }, '→'), value.el),
      get: () => ({ key: key.get() ?? '', value: value.get() }),
      set: (entry) => {
        key.set(entry?.key);
        value.set(entry?.value);
      },
    };
  };
  const list = listEditor(path, makeItem, () => ({ key: '', value: undefined }), field.name);
  return {
    el: list.el,
    get: () => {
      const entries = list.get();
      if (!entries) return undefined;
      const out = {};
      for (const { key, value } of entries) out[key] = value === undefined ? defaultFor(valueKind) : value;
      return out;
    },
    set: (object) => list.set(object && typeof object === 'object' ? Object.entries(object).map(([key, value]) => ({ key, value })) : []),
  };
}

/** One field's row: label plus editor (single value, list, or map). */
function fieldEditor(schema, field, path, depth) {
  const id = nextId();
  const fieldPath = join(path, field.name);
  let editor;
  if (field.kind === 'map') {
    editor = mapEditor(schema, field, fieldPath, depth);
  } else if (field.repeated) {
    editor = listEditor(fieldPath, (itemPath) => valueEditor(schema, field.kind, field.type_name, itemPath, depth, nextId()), () => defaultFor(field.kind), field.name);
  } else {
    editor = valueEditor(schema, field.kind, field.type_name, fieldPath, depth, id, { optionalBool: Boolean(field.proto3_optional) });
  }
  const row = h('div', { className: `field kind-${field.kind}`, dataset: { field: field.name } }, fieldLabel(field, id), editor.el);
  return { el: row, get: editor.get, set: editor.set, open: editor.open };
}

/** A oneof: pick a member, then edit it; the value is `{member: value}` or nothing. */
function oneofEditor(schema, oneof, fields, path, depth) {
  const id = nextId();
  const select = h('select', { id }, h('option', { value: '' }, '(none)'), fields.map((f) => h('option', { value: f.name }, `${f.name}: ${typeHint(f)}`)));
  const slot = h('div', { className: 'oneof-member' });
  let current = null;
  const choose = (name) => {
    select.value = name;
    const field = fields.find((f) => f.name === name);
    current = field ? { field, editor: fieldEditor(schema, field, path, depth) } : null;
    slot.replaceChildren(current ? current.editor.el : '');
  };
  // A member chosen by hand is to be edited: a message member opens at once.
  select.addEventListener('change', () => {
    choose(select.value);
    current?.editor.open?.();
  });
  const el = h('fieldset', { className: 'oneof' },
    h('legend', { title: oneof.comment ? commentText(oneof.comment) : null }, h('label', { for: id }, `oneof ${oneof.name}`)),
    select, slot);
  return {
    el,
    /** Returns [name, value] or undefined. */
    entry: () => {
      if (!current) return undefined;
      const value = current.editor.get();
      return [current.field.name, value === undefined ? defaultFor(current.field.kind) : value];
    },
    set: (object) => {
      const field = fields.find((f) => pick(object, f) !== undefined);
      choose(field ? field.name : '');
      if (field && current) current.editor.set(pick(object, field));
    },
  };
}

/** The body of a message: a row per field, a chooser per (real) oneof. */
function messageBody(schema, typeName, path, depth) {
  const message = schema.messages[typeName];
  const fields = message?.fields || [];
  const realOneofs = (message?.oneofs || []).filter((o) => !o.synthetic);
  const inOneof = new Set(realOneofs.flatMap((o) => o.fields));
  const parts = [];
  const plain = [];
  const choosers = [];
  const placed = new Set();
  for (const field of fields) {
    if (inOneof.has(field.name)) {
      const oneof = realOneofs.find((o) => o.fields.includes(field.name));
      if (placed.has(oneof.name)) continue;
      placed.add(oneof.name);
      const chooser = oneofEditor(schema, oneof, fields.filter((f) => oneof.fields.includes(f.name)), path, depth);
      choosers.push(chooser);
      parts.push(chooser.el);
    } else {
      const editor = fieldEditor(schema, field, path, depth);
      plain.push({ field, editor });
      parts.push(editor.el);
    }
  }
  if (!fields.length) parts.push(h('p', { className: 'muted' }, 'No fields.'));
  return {
    el: h('div', { className: 'message-body' }, parts),
    get: () => {
      const out = {};
      for (const { field, editor } of plain) {
        const value = editor.get();
        if (value !== undefined) out[field.name] = value;
      }
      for (const chooser of choosers) {
        const entry = chooser.entry();
        if (entry) out[entry[0]] = entry[1];
      }
      return out;
    },
    set: (object) => {
      for (const { field, editor } of plain) editor.set(pick(object, field));
      for (const chooser of choosers) chooser.set(object);
    },
  };
}

/**
 * A nested message: collapsible, built when first opened. Its value is left out unless a
 * field inside is set or "send empty" is ticked.
 */
function messageEditor(schema, typeName, path, depth) {
  let body = null;
  const include = h('input', { type: 'checkbox' });
  const details = h('details', { className: 'message' },
    h('summary', { title: schema.messages[typeName]?.comment || null }, h('span', { className: 'muted' }, shortName(typeName))),
    h('label', { className: 'include' }, include, ' send even when empty'));
  const build = () => {
    if (!body) {
      body = messageBody(schema, typeName, path, depth);
      details.append(body.el);
    }
    return body;
  };
  details.addEventListener('toggle', () => {
    if (details.open) build();
  });
  return {
    el: details,
    open: () => {
      build();
      details.open = true;
    },
    get: () => {
      const value = body ? body.get() : {};
      if (Object.keys(value).length) return value;
      return include.checked ? {} : undefined;
    },
    set: (value) => {
      if (value === undefined || value === null) {
        if (body) body.set({});
        include.checked = false;
        return;
      }
      build().set(value);
      include.checked = typeof value === 'object' && Object.keys(value).length === 0;
      details.open = true;
    },
  };
}

/** The top-level request form for a method's input type. */
export function requestForm(schema, typeName) {
  const body = messageBody(schema, typeName, '', 0);
  const comment = schema.messages[typeName]?.comment;
  return {
    el: h('div', { className: 'request-form' }, comment ? h('p', { className: 'comment', id: 'explorer-request-comment' }, commentText(comment)) : null, body.el),
    get: body.get,
    set: (value) => body.set(value && typeof value === 'object' ? value : {}),
  };
}
