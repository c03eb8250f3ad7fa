// Connect calls for the explorer: unary (`application/json`) and server streaming
// (`application/connect+json`) on the gateway's method paths (docs/protocols.md), with
// everything an answer carries: response headers, trailers, the status with its details,
// and timing. Connect is the browser's way to see real headers and trailers; client and
// bidi streams go over /ws (rpc.js) instead, which carries them too.
//
// Calls never reject: they resolve to an outcome
//   {code, message, details, headers, trailers, httpStatus, messages, timing}
// where `code` is the upper-case gRPC code name ('OK', 'NOT_FOUND', ...), `details` the
// Connect error details ({type, value: base64}), `headers` and `trailers` plain objects
// (repeated names joined with ", "), and `timing` {headersMs, firstMessageMs, totalMs}
// (null where the call never got that far).

import { ApiError, methodPath, request, url } from './api.js';

/** Longest response message accepted (a bound for a misbehaving server). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** How long a call without a deadline may wait for its response headers. */
const HEADERS_TIMEOUT_MS = 5 * 60 * 1000;
/** Grace on top of a deadline before the page stops waiting for the gateway's answer. */
const DEADLINE_GRACE_MS = 2000;
/** End-of-stream flag of a Connect envelope. */
const FLAG_END_STREAM = 0x02;
/** Compressed flag of a Connect envelope (never asked for here). */
const FLAG_COMPRESSED = 0x01;

/**
 * Response headers that describe the HTTP response rather than the call (with `connect-*`
 * and `access-control-*`); the explorer shows the rest: the upstream's metadata and the
 * gateway's x-call-id.
 */
const TRANSPORT_HEADERS = new Set([
  'content-type', 'content-length', 'content-encoding', 'date', 'vary', 'connection',
  'keep-alive', 'transfer-encoding', 'cache-control',
]);

/** Connect's code names (lower-case; `canceled`) as gRPC's upper-case ones. */
function codeName(connectCode) {
  if (!connectCode) return 'UNKNOWN';
  return connectCode === 'canceled' ? 'CANCELLED' : String(connectCode).toUpperCase();
}

function newCallId() {
  return `explorer-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * The shape the explorer shows messages in, on every transport: proto field names with
 * default values, as the JSON route and /ws write them unless told otherwise (docs/json.md).
 */
export const JSON_SHAPE = { names: 'proto', defaults: 'emit' };

/** The request headers of a call: protocol, JSON shape, deadline, call id and the user's metadata. */
function requestHeaders(contentType, { metadata = [], timeoutMs, callId }) {
  const headers = new Headers({
    'Content-Type': contentType,
    'Connect-Protocol-Version': '1',
    'X-Json-Names': JSON_SHAPE.names,
    'X-Json-Defaults': JSON_SHAPE.defaults,
    'X-Call-Id': callId,
  });
  if (Number.isFinite(timeoutMs)) headers.set('Connect-Timeout-Ms', String(timeoutMs));
  for (const [name, value] of metadata) headers.append(name, value);
  return headers;
}

/** Splits response headers into the call's headers and its trailers (`trailer-` names). */
function splitHeaders(response) {
  const headers = {};
  const trailers = {};
  for (const [name, value] of response.headers) {
    if (name.startsWith('trailer-')) trailers[name.slice('trailer-'.length)] = value;
    else if (!TRANSPORT_HEADERS.has(name) && !/^(access-control|connect)-/.test(name)) headers[name] = value;
  }
  return { headers, trailers };
}

/** Connect's end-of-stream `metadata` ({name: [values]}) as a plain object. */
function flatten(metadata) {
  const out = {};
  if (metadata && typeof metadata === 'object') {
    for (const [name, values] of Object.entries(metadata)) out[name] = Array.isArray(values) ? values.join(', ') : String(values);
  }
  return out;
}

/** A Connect error JSON body as the outcome's code, message and details. */
function readError(error, httpStatus) {
  return {
    code: error && typeof error === 'object' ? codeName(error.code) : `HTTP ${httpStatus}`,
    // Connect's error JSON has `message`; the gateway's front door answers `error`.
    message: typeof error?.message === 'string' ? error.message : typeof error?.error === 'string' ? error.error : '',
    details: Array.isArray(error?.details) ? error.details : [],
  };
}

function since(started) {
  return performance.now() - started;
}

/** The outcome of a call the gateway never answered (unreachable, cancelled, timed out). */
function unanswered(err, started, timing = {}) {
  const code = err instanceof ApiError && err.code ? err.code : 'UNAVAILABLE';
  return {
    code,
    message: err?.message || String(err),
    details: [],
    headers: {},
    trailers: {},
    httpStatus: 0,
    messages: 0,
    timing: { headersMs: null, firstMessageMs: null, ...timing, totalMs: since(started) },
  };
}

function fetchTimeout(timeoutMs) {
  return Number.isFinite(timeoutMs) ? timeoutMs + DEADLINE_GRACE_MS : HEADERS_TIMEOUT_MS;
}

/**
 * A unary call. `options`: {metadata: [[name, value]], timeoutMs, signal}. The outcome
 * carries the response message as `data` when the call succeeded.
 */
export async function connectUnary(service, method, message, options = {}) {
  const started = performance.now();
  const callId = newCallId();
  let response;
  try {
    response = await request(methodPath(service, method), {
      method: 'POST',
      headers: requestHeaders('application/json', { ...options, callId }),
      body: JSON.stringify(message ?? {}),
      signal: options.signal,
      timeoutMs: fetchTimeout(options.timeoutMs),
    });
  } catch (err) {
    return unanswered(err, started);
  }
  const headersMs = since(started);
  let text;
  try {
    text = await response.text();
  } catch (err) {
    return unanswered(options.signal?.aborted ? new ApiError('cancelled', { code: 'CANCELLED' }) : err, started, { headersMs });
  }
  const { headers, trailers } = splitHeaders(response);
  const timing = { headersMs, firstMessageMs: null, totalMs: since(started) };
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.ok) {
    timing.firstMessageMs = timing.totalMs;
    return { code: 'OK', message: '', details: [], headers, trailers, httpStatus: response.status, messages: 1, data: parsed ?? {}, timing };
  }
  const error = parsed ? readError(parsed, response.status) : { code: `HTTP ${response.status}`, message: text.slice(0, 500), details: [] };
  return { ...error, headers, trailers, httpStatus: response.status, messages: 0, timing };
}

/** A Connect envelope: flags, big-endian length, payload. */
function envelope(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

/** Reads Connect envelopes from a byte stream, calling `onEnvelope(flags, payload)`. */
async function readEnvelopes(body, onEnvelope) {
  const reader = body.getReader();
  let buffer = new Uint8Array(0);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      while (buffer.length >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (length > MAX_MESSAGE_BYTES) throw new ApiError(`a message of ${length} bytes is over the explorer's limit of ${MAX_MESSAGE_BYTES}`, { code: 'RESOURCE_EXHAUSTED' });
        if (buffer.length < 5 + length) break;
        onEnvelope(buffer[0], buffer.slice(5, 5 + length));
        buffer = buffer.slice(5 + length);
      }
    }
    if (buffer.length) throw new ApiError(`the stream ended inside a message (${buffer.length} bytes left)`, { code: 'INTERNAL' });
  } finally {
    reader.cancel().catch(() => null);
  }
}

/**
 * A server-streaming call. `options`: {metadata, timeoutMs, signal, onHeaders(headers),
 * onMessage(message, index)}. Resolves when the stream has ended, however it ended.
 */
export async function connectServerStream(service, method, message, options = {}) {
  const started = performance.now();
  const callId = newCallId();
  const body = envelope(new TextEncoder().encode(JSON.stringify(message ?? {})));
  let response;
  try {
    response = await request(methodPath(service, method), {
      method: 'POST',
      headers: requestHeaders('application/connect+json', { ...options, callId }),
      body,
      signal: options.signal,
      timeoutMs: fetchTimeout(options.timeoutMs),
    });
  } catch (err) {
    return unanswered(err, started);
  }
  const timing = { headersMs: since(started), firstMessageMs: null, totalMs: null };
  const { headers } = splitHeaders(response);
  if (!response.ok) {
    // Refused before the stream started: Connect's error JSON with an HTTP status.
    const text = await response.text().catch(() => '');
    let parsed = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const error = parsed ? readError(parsed, response.status) : { code: `HTTP ${response.status}`, message: text.slice(0, 500), details: [] };
    return { ...error, headers, trailers: {}, httpStatus: response.status, messages: 0, timing: { ...timing, totalMs: since(started) } };
  }
  options.onHeaders?.(headers);
  const decoder = new TextDecoder();
  let count = 0;
  let end = null;
  try {
    await readEnvelopes(response.body, (flags, payload) => {
      if (flags & FLAG_COMPRESSED) throw new ApiError('a compressed message, which the explorer did not ask for', { code: 'INTERNAL' });
      const value = JSON.parse(decoder.decode(payload));
      if (flags & FLAG_END_STREAM) {
        end = value ?? {};
        return;
      }
      count += 1;
      if (timing.firstMessageMs === null) timing.firstMessageMs = since(started);
      options.onMessage?.(value, count);
    });
  } catch (err) {
    const reason = options.signal?.aborted ? new ApiError('cancelled', { code: 'CANCELLED' })
      : err instanceof ApiError ? err : new ApiError(`stream broken (${err?.message || err})`, { code: 'UNAVAILABLE' });
    return { ...unanswered(reason, started, timing), headers, httpStatus: response.status, messages: count };
  }
  timing.totalMs = since(started);
  if (!end) {
    return { code: 'INTERNAL', message: 'the stream ended without its end-of-stream message', details: [], headers, trailers: {}, httpStatus: response.status, messages: count, timing };
  }
  const status = end.error ? readError(end.error, response.status) : { code: 'OK', message: '', details: [] };
  return { ...status, headers, trailers: flatten(end.metadata), httpStatus: response.status, messages: count, timing };
}

/** Quotes a string for a POSIX shell. */
function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

/** A POSIX printf format writing these bytes (octal escapes). */
function printfBytes(bytes) {
  return [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
}

/**
 * A curl command making the same Connect call as the explorer: `{metadata, timeoutMs}` as
 * its headers. A server stream's request is one envelope (5 bytes of header made by printf,
 * then the JSON); its answer is a stream of envelopes, printed as they arrive.
 */
export function connectCurl(service, method, message, { streaming = false, metadata = [], timeoutMs } = {}) {
  const json = JSON.stringify(message ?? {});
  const target = shellQuote(url(methodPath(service, method)));
  const headers = [
    `-H ${shellQuote(`Content-Type: ${streaming ? 'application/connect+json' : 'application/json'}`)}`,
    `-H 'Connect-Protocol-Version: 1'`,
    `-H 'X-Json-Names: ${JSON_SHAPE.names}' -H 'X-Json-Defaults: ${JSON_SHAPE.defaults}'`,
  ];
  if (Number.isFinite(timeoutMs)) headers.push(`-H ${shellQuote(`Connect-Timeout-Ms: ${timeoutMs}`)}`);
  for (const [name, value] of metadata) headers.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  if (!streaming) return [`curl -sS -X POST ${target}`, ...headers, `-d ${shellQuote(json)}`].join(' \\\n  ');
  const prefix = envelope(new Uint8Array(0));
  new DataView(prefix.buffer).setUint32(1, new TextEncoder().encode(json).length);
  return [
    `{ printf '${printfBytes(prefix)}'; printf '%s' ${shellQuote(json)}; } |`,
    `curl -sS -N -X POST ${target}`,
    ...headers,
    '--data-binary @- --output -',
  ].join(' \\\n  ');
}
