// Request metadata rows and the deadline field of the explorer: what gRPC lets a caller send
// (names of lower-case letters, digits, `_`, `-`, `.`; printable ASCII values; base64 for
// `-bin` names), minus the names the protocols and the gateway set themselves.

import { h } from './dom.js';
import { FormError } from './form.js';

/** The /ws limit on a call's metadata, which the explorer keeps to on every transport. */
export const MAX_METADATA_BYTES = 8 * 1024;
/**
 * The longest deadline: the page's own timers (setTimeout) keep at most 2^31 - 1 ms, and they
 * wait a little past the deadline for the gateway's answer. About 23 days.
 */
const MAX_DEADLINE_MS = 2000000000;

/** Names a caller cannot set, and why. */
const RESERVED = new Map([
  ['content-type', 'set by the protocol'],
  ['te', 'set by the protocol'],
  ['connection', 'a connection header, not metadata'],
  ['keep-alive', 'a connection header, not metadata'],
  ['upgrade', 'a connection header, not metadata'],
  ['transfer-encoding', 'a connection header, not metadata'],
  ['proxy-connection', 'a connection header, not metadata'],
  ['host', 'set by the browser'],
  ['content-length', 'set by the browser'],
  ['content-encoding', 'set by the protocol'],
  ['accept-encoding', 'set by the protocol'],
  ['user-agent', 'set by the browser'],
  ['cookie', 'set by the browser'],
  ['x-call-id', 'set by the explorer for each call'],
  ['x-timeout-ms', 'use the deadline field'],
  ['x-json-names', 'the explorer chooses the JSON shape'],
  ['x-json-defaults', 'the explorer chooses the JSON shape'],
]);

/** Headers a browser does not let a page set (fetch drops them without a word). */
const FORBIDDEN_BY_BROWSERS = new Set([
  'accept-charset', 'access-control-request-headers', 'access-control-request-method', 'cookie2',
  'date', 'dnt', 'expect', 'origin', 'referer', 'set-cookie', 'trailer', 'via',
]);

/** Why `name` cannot be sent as request metadata ('' = it can). */
export function nameProblem(name) {
  if (name.startsWith(':')) return 'pseudo-headers are set by HTTP/2 itself';
  if (name.startsWith('grpc-')) return 'grpc-* names are reserved by gRPC (use the deadline field for grpc-timeout)';
  if (name.startsWith('connect-')) return 'connect-* names are reserved by the Connect protocol (use the deadline field)';
  if (RESERVED.has(name)) return `reserved: ${RESERVED.get(name)}`;
  if (FORBIDDEN_BY_BROWSERS.has(name) || name.startsWith('sec-') || name.startsWith('proxy-')) return 'a browser does not let a page send this header';
  if (!/^[0-9a-z_.-]+$/.test(name)) return 'a metadata name has only letters, digits, "_", "-" and "."';
  return '';
}

/** Why `value` cannot be sent under `name` ('' = it can). */
export function valueProblem(name, value) {
  if (name.endsWith('-bin')) {
    return /^[A-Za-z0-9+/]*={0,2}$/.test(value) || /^[A-Za-z0-9_-]*$/.test(value) ? '' : 'a -bin name takes a base64 value';
  }
  return /^[\x20-\x7e]*$/.test(value) ? '' : 'a value is printable ASCII (use a -bin name for bytes)';
}

function mark(input, problem) {
  input.setAttribute('aria-invalid', problem ? 'true' : 'false');
  input.title = problem;
}

/**
 * The rows and the deadline: `{el, rows(strict), deadline(strict), setDeadline(ms), add(name,
 * value), count()}`. `rows()` returns `[[name, value]]` (names lower-cased, empty rows left
 * out); strict reading throws FormError naming the row, lenient reading skips bad rows.
 * `onChange` runs after every edit.
 */
export function metadataEditor({ onChange = () => {} } = {}) {
  const list = h('div', { className: 'metadata-rows', id: 'explorer-metadata', role: 'list', 'aria-label': 'Request metadata' });
  const entries = [];
  const deadlineInput = h('input', { type: 'number', id: 'explorer-deadline', min: '0', step: '1', inputMode: 'numeric', placeholder: 'none', 'aria-label': 'Deadline in milliseconds' });
  const add = (name = '', value = '') => {
    const nameInput = h('input', { type: 'text', className: 'metadata-name', value: name, autocomplete: 'off', spellcheck: 'false', placeholder: 'name, e.g. x-request-id', 'aria-label': 'Metadata name' });
    const valueInput = h('input', { type: 'text', className: 'metadata-value', value, autocomplete: 'off', spellcheck: 'false', placeholder: 'value (base64 for -bin names)', 'aria-label': 'Metadata value' });
    const entry = { nameInput, valueInput };
    const remove = h('button', { type: 'button', className: 'small ghost', 'aria-label': 'Remove this metadata row', title: 'Remove', onclick: () => {
      entries.splice(entries.indexOf(entry), 1);
      entry.row.remove();
      onChange();
    } }, '×');
    entry.row = h('div', { className: 'metadata-row', role: 'listitem' }, nameInput, valueInput, remove);
    for (const input of [nameInput, valueInput]) input.addEventListener('input', () => { check(entry); onChange(); });
    entries.push(entry);
    list.append(entry.row);
    onChange();
    return entry;
  };
  /** Marks the row; returns its [name, value, problem], or null when it is empty. */
  const check = (entry) => {
    const name = entry.nameInput.value.trim().toLowerCase();
    const value = entry.valueInput.value.trim();
    if (!name && !value) {
      mark(entry.nameInput, '');
      mark(entry.valueInput, '');
      return null;
    }
    const nameError = name ? nameProblem(name) : 'a name is needed';
    const valueError = nameError ? '' : valueProblem(name, value);
    mark(entry.nameInput, nameError);
    mark(entry.valueInput, valueError);
    return [name, value, nameError || valueError];
  };
  const rows = (strict = true) => {
    const out = [];
    const seen = new Set();
    let bytes = 0;
    for (const [index, entry] of entries.entries()) {
      const row = check(entry);
      if (!row) continue;
      const [name, value, problem] = row;
      const label = `metadata ${name || `row ${index + 1}`}`;
      let refusal = problem;
      if (!refusal && seen.has(name)) refusal = 'given twice (one row per name)';
      if (refusal) {
        if (strict) {
          mark(entry.nameInput, refusal);
          throw new FormError(label, refusal);
        }
        continue;
      }
      seen.add(name);
      bytes += name.length + value.length;
      out.push([name, value]);
    }
    if (strict && bytes > MAX_METADATA_BYTES) throw new FormError('metadata', `${bytes} bytes; the limit is ${MAX_METADATA_BYTES}`);
    return out;
  };
  const deadline = (strict = true) => {
    const text = deadlineInput.value.trim();
    if (!text) {
      mark(deadlineInput, '');
      return undefined;
    }
    const ms = Number(text);
    const problem = /^\d+$/.test(text) && ms <= MAX_DEADLINE_MS ? '' : `a whole number of milliseconds up to ${MAX_DEADLINE_MS}`;
    mark(deadlineInput, problem);
    if (problem) {
      if (strict) throw new FormError('deadline', problem);
      return undefined;
    }
    return ms;
  };
  deadlineInput.addEventListener('input', () => { deadline(false); onChange(); });
  const addButton = h('button', { type: 'button', className: 'small', id: 'explorer-metadata-add', onclick: () => add().nameInput.focus() }, '+ Add metadata');
  return {
    el: h('div', { className: 'request-meta-body' },
      list,
      h('div', { className: 'request-meta-actions' }, addButton,
        h('label', { className: 'deadline', for: 'explorer-deadline' }, 'Deadline', deadlineInput, h('span', { className: 'muted' }, 'ms')))),
    rows,
    deadline,
    add,
    setDeadline: (ms) => {
      deadlineInput.value = Number.isFinite(ms) ? String(ms) : '';
      deadline(false);
    },
    count: () => entries.filter((entry) => entry.nameInput.value.trim() || entry.valueInput.value.trim()).length,
  };
}
