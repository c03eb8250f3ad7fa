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
/** The toasts on screen by kind and text, so a repeat updates the one shown. */
const shownToasts = new Map();

/**
 * Shows a short notification; `kind` is "info", "error" or "ok". The same message again
 * while it is still shown does not stack a second toast: the first one counts (×2, ×3…)
 * and stays for another `timeoutMs`, so a retry loop cannot bury the page in toasts.
 *
 * Toasts never take a click meant for what lies under them: the box and the toast's text
 * let pointer events through, only the toast's × button takes them (it dismisses it).
 * Set here rather than in styles.css because it is how toast() builds them.
 */
export function toast(message, kind = 'info', timeoutMs = 5000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  box.style.pointerEvents = 'none';
  const text = String(message);
  const key = `${kind}\u0000${text}`;
  let entry = shownToasts.get(key);
  if (entry?.item.isConnected) {
    entry.count += 1;
    entry.badge.textContent = `×${entry.count}`;
    entry.badge.hidden = false;
    entry.item.dataset.count = String(entry.count);
    // The newest at the bottom, next to where new toasts appear.
    box.append(entry.item);
  } else {
    while (box.childElementCount >= MAX_TOASTS) dismiss(box.firstElementChild);
    const badge = h('span', { className: 'toast-count', hidden: true, 'aria-hidden': 'true' });
    const close = h('button', { type: 'button', className: 'toast-close small ghost', 'aria-label': 'Dismiss notification', title: 'Dismiss', style: { pointerEvents: 'auto' } }, '×');
    const item = h('div', { className: `toast ${kind}`, dataset: { count: '1' } }, h('span', { className: 'toast-text' }, text), ' ', badge, ' ', close);
    entry = { key, item, badge, count: 1, timer: 0 };
    item.toastEntry = entry;
    close.addEventListener('click', () => dismiss(item));
    shownToasts.set(key, entry);
    box.append(item);
  }
  clearTimeout(entry.timer);
  entry.timer = setTimeout(() => dismiss(entry.item), timeoutMs);
}

function dismiss(item) {
  if (!item) return;
  const entry = item.toastEntry;
  if (entry) {
    clearTimeout(entry.timer);
    if (shownToasts.get(entry.key) === entry) shownToasts.delete(entry.key);
  }
  item.remove();
}

/** True when keyboard focus is in a text field, so single-key shortcuts must not fire. */
export function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag !== 'INPUT') return false;
  const type = /** @type {HTMLInputElement} */ (target).type;
  return !['button', 'checkbox', 'radio', 'range', 'color', 'submit', 'reset'].includes(type);
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
