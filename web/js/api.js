// Talking to the gateway: where it is, and JSON calls to `POST /{Service}/{method}`.
//
// Every URL is relative to a base so the client works behind a path prefix, on another
// port, or from file:// (where the user sets the server in Settings or with ?server=).

import { prefs } from './prefs.js';

/** Where the original proxy listened; used only when the page itself is not served over HTTP. */
const FILE_FALLBACK = 'http://127.0.0.1:51023/';
const DEFAULT_TIMEOUT_MS = 30000;

/** A failed call: `status` is the HTTP status (0 = no answer), `code` the gRPC code if any. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = '', body = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** True when the gateway itself could not be reached (as opposed to an error answer). */
  get unreachable() {
    return this.status === 0;
  }
}

function normalizeBase(text) {
  const url = new URL(text, location.href);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url.href;
}

/** The server URL the user stored in Settings ('' = none); kept by prefs.js as 'server'. */
export function storedServer() {
  return prefs.get('server');
}

/** Stores (or with '' clears) the server URL; throws on a malformed URL. */
export function storeServer(text) {
  const value = text.trim();
  if (value) normalizeBase(value);
  prefs.set('server', value);
}

let cachedBase = null;

/** The gateway base URL, always ending in "/": ?server=, then Settings, then the page's own location. */
export function baseUrl() {
  if (cachedBase) return cachedBase;
  const fromQuery = new URLSearchParams(location.search).get('server');
  const chosen = fromQuery || storedServer();
  try {
    if (chosen) cachedBase = normalizeBase(chosen);
  } catch {
    cachedBase = null;
  }
  if (!cachedBase) {
    cachedBase = location.protocol === 'http:' || location.protocol === 'https:'
      ? normalizeBase('./')
      : FILE_FALLBACK;
  }
  return cachedBase;
}

/** Absolute http(s) URL of a gateway path ("health", "render/frame.png", ...). */
export function url(path) {
  return new URL(path.replace(/^\/+/, ''), baseUrl()).href;
}

/** Absolute ws(s) URL of a gateway path. */
export function wsUrl(path) {
  const u = new URL(url(path));
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/** The path of the JSON call route for a method. */
export function methodPath(service, method) {
  return `${encodeURIComponent(service)}/${encodeURIComponent(method)}`;
}

let callCounter = 0;

function newCallId() {
  callCounter += 1;
  const random = Math.random().toString(36).slice(2, 8);
  return `web-${Date.now().toString(36)}-${callCounter}-${random}`;
}

/**
 * Fetch with a timeout on getting the answer's headers. The caller's AbortSignal stays tied
 * to the whole response, body included. Network failures and timeouts become ApiError with
 * status 0.
 */
export async function request(path, { method = 'GET', headers = {}, body, signal, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), timeoutMs);
  const combined = signal ? anySignal([signal, timeout.signal]) : timeout.signal;
  try {
    return await fetch(url(path), { method, headers, body, signal: combined, cache: 'no-store' });
  } catch (err) {
    if (signal?.aborted) throw new ApiError('cancelled', { code: 'CANCELLED' });
    if (timeout.signal.aborted) throw new ApiError(`no answer from the gateway within ${timeoutMs / 1000} s`, { code: 'DEADLINE_EXCEEDED' });
    throw new ApiError(`gateway unreachable (${err?.message || err})`);
  } finally {
    clearTimeout(timer);
  }
}

function anySignal(signals) {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(signals);
  const controller = new AbortController();
  for (const s of signals) s.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}

/**
 * Calls a method through the JSON route and resolves to the response message (`data`).
 * Rejects with ApiError carrying the gateway's error text and code.
 */
export async function call(service, method, message = {}, options = {}) {
  const result = await callRaw(service, method, message, options);
  if (!result.ok) throw result.error;
  return result.data;
}

/**
 * Like call() but never rejects: resolves to `{ok, data, error, status, durationMs, raw}`.
 */
export async function callRaw(service, method, message = {}, { signal, timeoutMs } = {}) {
  const started = performance.now();
  const body = typeof message === 'string' ? message : JSON.stringify(message ?? {});
  let response;
  try {
    response = await request(methodPath(service, method), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Call-Id': newCallId() },
      body,
      signal,
      timeoutMs,
    });
  } catch (error) {
    return { ok: false, error, status: 0, durationMs: performance.now() - started, raw: null };
  }
  const text = await response.text().catch(() => '');
  const durationMs = performance.now() - started;
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.ok && parsed && parsed.success === true) {
    return { ok: true, data: parsed.data ?? {}, status: response.status, durationMs, raw: parsed };
  }
  const message_ = parsed?.error || parsed?.message || plainText(text) || `HTTP ${response.status} ${response.statusText}`.trim();
  const error = new ApiError(String(message_), { status: response.status, code: parsed?.code || '', body: parsed });
  return { ok: false, error, status: response.status, durationMs, raw: parsed ?? text };
}

/** Most calls the client puts in one `POST /batch` (the gateway takes up to 1000). */
export const MAX_BATCH_CALLS = 250;

/**
 * Runs unary calls `[{service, method, params}]` in one `POST /batch` round trip per
 * MAX_BATCH_CALLS; resolves to one `{ok, data}` or `{ok: false, error: ApiError}` per call,
 * in order. Rejects with ApiError when the batch itself fails (status 404 or 405: a gateway
 * without /batch).
 */
export async function batch(calls, { signal, timeoutMs } = {}) {
  const results = [];
  for (let start = 0; start < calls.length; start += MAX_BATCH_CALLS) {
    const chunk = calls.slice(start, start + MAX_BATCH_CALLS);
    const response = await request('batch', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Call-Id': newCallId() },
      body: JSON.stringify(chunk),
      signal,
      timeoutMs,
    });
    const text = await response.text().catch(() => '');
    let parsed = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (!response.ok || !Array.isArray(parsed) || parsed.length !== chunk.length) {
      const message = parsed?.error || parsed?.message || plainText(text) || `HTTP ${response.status}`;
      throw new ApiError(`batch: ${message}`, { status: response.status, code: parsed?.code || '', body: parsed });
    }
    for (const item of parsed) {
      if (item?.success === true) results.push({ ok: true, data: item.data ?? {} });
      else results.push({ ok: false, error: new ApiError(String(item?.error || 'the call failed'), { status: response.status, code: item?.code || '', body: item }) });
    }
  }
  return results;
}

/** A short plain-text version of an unexpected (e.g. HTML) error body. */
function plainText(text) {
  const plain = String(text).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return plain.length > 200 ? `${plain.slice(0, 200)}…` : plain;
}

/** GETs a JSON document (e.g. "schema", "health"); rejects with ApiError. */
export async function getJson(path, options = {}) {
  const response = await request(path, options);
  const text = await response.text().catch(() => '');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(`${path}: not JSON (HTTP ${response.status})`, { status: response.status });
  }
  if (!response.ok) {
    throw new ApiError(parsed?.error || parsed?.message || `HTTP ${response.status}`, { status: response.status, code: parsed?.code || '', body: parsed });
  }
  return parsed;
}
