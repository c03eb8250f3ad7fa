// Small DOM helpers shared by the modules (no framework).

/**
 * Creates an element. `attrs` keys starting with "on" add listeners, `dataset` and `style`
 * take objects, `text` sets textContent; everything else becomes an attribute (false/null
 * skip it). Children may be nodes, strings, or arrays of them.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'text') {
      el.textContent = value;
    } else if (key === 'className') {
      el.className = value;
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Returns the element with this id or throws a clear error (a missing id is a bug in index.html). */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no element #${id}`);
  return el;
}

const MAX_TOASTS = 4;

/** Shows a short notification; `kind` is "info", "error" or "ok". */
export function toast(message, kind = 'info', timeoutMs = 5000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  while (box.childElementCount >= MAX_TOASTS) box.firstElementChild?.remove();
  const item = h('div', { className: `toast ${kind}` }, String(message));
  box.append(item);
  setTimeout(() => item.remove(), timeoutMs);
}

/** True when keyboard focus is in a text field, so single-key shortcuts must not fire. */
export function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag !== 'INPUT') return false;
  const type = /** @type {HTMLInputElement} */ (target).type;
  return !['button', 'checkbox', 'radio', 'range', 'submit', 'reset'].includes(type);
}

/** Formats a number with a unit prefix (k, M, G) for compact HUD display. */
export function compact(value, digits = 1) {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(digits)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(digits)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(digits)}k`;
  return value.toFixed(abs >= 100 ? 0 : digits);
}
