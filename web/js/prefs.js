// The client's preferences: the one module that touches localStorage.
//
// Every preference has a type, a default and a check, so a value another version of the
// client (or a hand-edited storage) left behind is corrected on read instead of breaking a
// module. Storage may be disabled or full (private windows, quotas): values then live in
// memory for this page and nothing throws.
//
// Storage keys are the ones the client has always used, so nobody loses a setting:
//   'octaneweb.prefs'   one JSON object: transport, maxFps, cameraRate, encoding, quality,
//                       exposure, and now recentProjects and panels; fields this version does
//                       not know are kept when it writes
//   'octaneweb.server'  the gateway URL as plain text (Settings)
//   'octaneweb.history' the API explorer's call history (JSON array); a key of its own so a
//                       long history that hits the quota cannot cost the other settings

const PREFS_KEY = 'octaneweb.prefs';
const SERVER_KEY = 'octaneweb.server';
const HISTORY_KEY = 'octaneweb.history';

/** Calls kept in the explorer's history. */
export const MAX_HISTORY = 50;
/** Project paths kept in recentProjects. */
export const MAX_RECENT_PROJECTS = 10;

/** A preference value that cannot be made valid (set() throws it; reads fall back to the default). */
export class PrefError extends TypeError {
  constructor(name, why) {
    super(`preference ${name}: ${why}`);
    this.name = 'PrefError';
  }
}

function choice(choices) {
  return (value, name) => {
    if (choices.includes(value)) return value;
    throw new PrefError(name, `expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  };
}

/**
 * A number clamped to [min, max]; `step` rounds it (integers: 1). Numeric strings are taken
 * because form fields give strings.
 */
function number(min, max, step) {
  return (value, name) => {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new PrefError(name, `expected a number, got ${JSON.stringify(value)}`);
    const rounded = Math.round(n / step) * step;
    // Rounding to a fraction leaves binary noise (0.30000000000000004); keep the step's digits.
    const digits = step < 1 ? String(step).split('.')[1]?.length ?? 0 : 0;
    return Math.min(max, Math.max(min, Number(rounded.toFixed(digits))));
  };
}

/** `null` (the server decides) or a value `check` accepts. */
function orNull(check) {
  return (value, name) => (value === null || value === undefined ? null : check(value, name));
}

/** The gateway URL: '' (none) or an absolute http(s) URL. */
function serverUrl(value, name) {
  if (typeof value !== 'string') throw new PrefError(name, 'expected a URL');
  const text = value.trim();
  if (!text) return '';
  let parsed;
  try {
    parsed = new URL(text, location.href);
  } catch {
    throw new PrefError(name, `not a valid URL: ${text}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new PrefError(name, `not an http(s) URL: ${text}`);
  return text;
}

/** Explorer history: call records, newest first; records without a method are dropped. */
function history(value, name) {
  if (!Array.isArray(value)) throw new PrefError(name, 'expected an array');
  return value
    .filter((e) => e && typeof e === 'object' && typeof e.service === 'string' && typeof e.method === 'string')
    .slice(0, MAX_HISTORY);
}

/** Distinct non-empty strings, most recent first, at most MAX_RECENT_PROJECTS. */
function recentProjects(value, name) {
  if (!Array.isArray(value)) throw new PrefError(name, 'expected an array of strings');
  const seen = new Set();
  for (const item of value) {
    if (typeof item !== 'string' || !item.trim() || seen.has(item)) continue;
    seen.add(item);
    if (seen.size === MAX_RECENT_PROJECTS) break;
  }
  return [...seen];
}

/** UI layout flags: an object of booleans (other values are dropped). */
function panels(value, name) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new PrefError(name, 'expected an object of flags');
  const flags = {};
  for (const [key, flag] of Object.entries(value)) if (typeof flag === 'boolean') flags[key] = flag;
  return flags;
}

/**
 * Every preference: its default, its check (returns the valid value or throws PrefError) and
 * where it is stored (`field` of the 'octaneweb.prefs' object, or a `key` of its own).
 */
const SPECS = {
  transport: { fallback: 'auto', check: choice(['auto', 'ws', 'sse', 'poll']) },
  maxFps: { fallback: 0, check: number(0, 240, 1) },
  cameraRate: { fallback: 30, check: number(1, 120, 1) },
  // null: what the server streams (its hello tells); a value: the user's choice.
  encoding: { fallback: null, check: orNull(choice(['jpeg', 'png', 'raw'])) },
  quality: { fallback: null, check: orNull(number(1, 100, 1)) },
  exposure: { fallback: 0, check: number(-5, 5, 0.1) },
  recentProjects: { fallback: [], check: recentProjects },
  panels: { fallback: {}, check: panels },
  server: { fallback: '', check: serverUrl, key: SERVER_KEY, text: true },
  history: { fallback: [], check: history, key: HISTORY_KEY },
};

function spec(name) {
  const found = Object.hasOwn(SPECS, name) ? SPECS[name] : null;
  if (!found) throw new PrefError(name, 'no such preference');
  return found;
}

function storage() {
  try {
    return window.localStorage ?? null;
  } catch {
    // Reading localStorage itself throws when the browser blocks storage for the page.
    return null;
  }
}

function readRaw(key) {
  try {
    return storage()?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

/** True when written; false when storage is disabled or full. */
function writeRaw(key, text) {
  const store = storage();
  if (!store) return false;
  try {
    if (text === null) store.removeItem(key);
    else store.setItem(key, text);
    return true;
  } catch {
    return false;
  }
}

function readJson(key) {
  const text = readRaw(key);
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The stored 'octaneweb.prefs' object ({} when missing or malformed). */
function readPrefsObject() {
  const stored = readJson(PREFS_KEY);
  return stored && typeof stored === 'object' && !Array.isArray(stored) ? stored : {};
}

/** The valid value of `name` in storage, or its default. */
function load(name) {
  const s = spec(name);
  let raw;
  if (s.key) raw = s.text ? readRaw(s.key) ?? undefined : readJson(s.key);
  else raw = readPrefsObject()[name];
  if (raw === undefined) return copy(s.fallback);
  try {
    return s.check(raw, name);
  } catch {
    return copy(s.fallback);
  }
}

/** Defaults and stored arrays/objects are handed out as copies: callers may mutate theirs. */
function copy(value) {
  if (Array.isArray(value)) return value.map((v) => (v && typeof v === 'object' ? structuredClone(v) : v));
  return value && typeof value === 'object' ? structuredClone(value) : value;
}

function sameValue(a, b) {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Values of this page: read once, then kept here (the source when storage is off). */
const cache = new Map();
const listeners = new Map();

function current(name) {
  if (!cache.has(name)) cache.set(name, load(name));
  return cache.get(name);
}

function notify(name, value) {
  for (const fn of listeners.get(name) ?? []) {
    try {
      fn(copy(value), name);
    } catch (err) {
      // One broken listener must not stop the others (nor the caller's set()).
      console.error(err);
    }
  }
}

/** The current value of preference `name` (a copy for arrays and objects). */
export function get(name) {
  return copy(current(name));
}

/**
 * Sets `name` to `value` made valid (numbers clamped and rounded, lists trimmed); throws
 * PrefError for a value that cannot be (an unknown choice, a non-number, a malformed URL).
 * Persists it when storage allows (the page keeps it either way) and tells subscribers if
 * it changed. Returns the value stored.
 */
export function set(name, value) {
  const s = spec(name);
  const valid = s.check(value, name);
  const before = current(name);
  cache.set(name, valid);
  if (s.key) {
    const empty = s.text ? valid === '' : Array.isArray(valid) && valid.length === 0;
    writeRaw(s.key, empty ? null : s.text ? valid : JSON.stringify(valid));
  } else {
    // Read, change one field, write: fields of other client versions survive.
    const stored = readPrefsObject();
    stored[name] = valid;
    writeRaw(PREFS_KEY, JSON.stringify(stored));
  }
  if (!sameValue(before, valid)) notify(name, valid);
  return copy(valid);
}

/** Sets `name` back to its default. */
export function reset(name) {
  return set(name, copy(spec(name).fallback));
}

/** Changes several preferences; stops at the first invalid one (those before it are kept). */
export function update(values) {
  for (const [name, value] of Object.entries(values)) set(name, value);
}

/** Every preference's current value, by name. */
export function all() {
  return Object.fromEntries(Object.keys(SPECS).map((name) => [name, get(name)]));
}

/** The default of `name`. */
export function defaultOf(name) {
  return copy(spec(name).fallback);
}

/**
 * Calls `fn(value, name)` whenever `name` changes, on this page or (through the storage
 * event) in another tab of the same client. Returns a function that unsubscribes.
 */
export function subscribe(name, fn) {
  spec(name);
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name)?.delete(fn);
}

/** Adds `path` at the front of recentProjects (moving it there if present); returns the list. */
export function rememberProject(path) {
  return set('recentProjects', [path, ...current('recentProjects').filter((p) => p !== path)]);
}

// Another tab changed a setting: take the new value so both tabs agree.
window.addEventListener('storage', (event) => {
  if (event.storageArea && event.storageArea !== storage()) return;
  const names = Object.keys(SPECS).filter((name) => {
    const key = SPECS[name].key ?? PREFS_KEY;
    // key null: the other tab cleared all storage.
    return event.key === null || event.key === key;
  });
  for (const name of names) {
    if (!cache.has(name)) continue;
    const fresh = load(name);
    if (sameValue(cache.get(name), fresh)) continue;
    cache.set(name, fresh);
    notify(name, fresh);
  }
});

/** The module as one object, for `import { prefs } from './prefs.js'`. */
export const prefs = { get, set, reset, update, all, defaultOf, subscribe, rememberProject };
