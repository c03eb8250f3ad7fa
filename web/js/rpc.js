// rpc.js: gRPC calls of all four kinds from the browser over the gateway's multiplexed
// WebSocket (`GET /ws`, protocol in docs/websocket.md). No dependencies.
//
//   import { RpcClient, RpcError } from './rpc.js';
//   const rpc = new RpcClient();                 // or new RpcClient('ws://host:port/ws')
//   const camera = await rpc.unary('LiveLink/GetCamera', {});
//   for await (const event of rpc.serverStream('telemetry.v1.TrainingService/WatchMetrics', {})) { ... }
//   const upload = rpc.clientStream('LiveLink/StreamCamera');
//   upload.send(state); upload.send(state2); upload.end(); const status = await upload.response;
//   const chat = rpc.bidi('telemetry.v1.TrainingService/Control');
//   chat.send({ pause: {} }); for await (const ack of chat) { ... }  // chat.end(), chat.cancel()
//
// Options of every call: {metadata: {key: value}, timeoutMs, signal: AbortSignal (abort =
// cancel), onHeaders(headers): called when the response headers arrive, jsonNames ('proto' or
// 'camel') and jsonDefaults ('emit' or 'omit'): the shape of the response messages, else the
// gateway's (docs/json.md)}. Methods are named as the gateway accepts them (`LiveLink/GetCamera`,
// `pkg.Service/Method`); messages are proto3 JSON values. A failed call rejects (or ends its
// iteration) with an RpcError carrying the gRPC `code` name and the server's `message`.
//
// One socket carries every call of a client; it opens on the first call and, after it
// closes, again on the next one. Calls running when it closes fail with UNAVAILABLE.
// Every buffer here is bounded: frames waiting for the socket to open, bytes the browser
// holds unsent, and messages a stream holds for a reader that is slower than the server.
// Type declarations for TypeScript users: rpc.d.ts, next to this file.

/** Frames held while the socket is connecting. */
const MAX_PENDING_FRAMES = 1000;
/** Messages a stream holds for its reader before it cancels the call. */
const MAX_BUFFERED_MESSAGES = 10000;
/** Bytes the browser may hold unsent on the socket before a sending call fails. */
const MAX_UNSENT_BYTES = 16 * 1024 * 1024;
/** Grace on top of a call's timeout before the client gives up on hearing the server's end. */
const TIMEOUT_GRACE_MS = 2000;
/** How long opening the socket may take. */
const CONNECT_TIMEOUT_MS = 10000;
/** The longest delay setTimeout keeps (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A failed call: `code` is the gRPC status name (e.g. 'NOT_FOUND', 'UNAVAILABLE'). */
export class RpcError extends Error {
  constructor(code, message, { details = [], trailers = {}, headers = {} } = {}) {
    super(message || code);
    this.name = 'RpcError';
    this.code = code;
    this.details = details;
    this.trailers = trailers;
    this.headers = headers;
  }
}

/** The gateway's /ws URL next to this page (or ws:// for http://). */
function defaultUrl() {
  const u = new URL('ws', location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.search = '';
  u.hash = '';
  return u.href;
}

/** A bounded queue with an async reader, closed by an end or an error. */
class MessageQueue {
  constructor(onOverflow) {
    this.items = [];
    this.waiters = [];
    this.done = false;
    this.error = null;
    this.onOverflow = onOverflow;
  }

  push(value) {
    if (this.done) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value, done: false });
      return;
    }
    if (this.items.length >= MAX_BUFFERED_MESSAGES) {
      this.onOverflow();
      return;
    }
    this.items.push(value);
  }

  close(error = null) {
    if (this.done) return;
    this.done = true;
    this.error = error;
    for (const waiter of this.waiters.splice(0)) {
      if (error) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  next() {
    if (this.items.length) return Promise.resolve({ value: this.items.shift(), done: false });
    if (this.done) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

/** One call on the socket; settles exactly once. */
class Call {
  constructor(client, id, { timeoutMs, signal, onHeaders }) {
    this.client = client;
    this.id = id;
    this.headers = {};
    this.onHeaders = onHeaders;
    this.ended = false;
    this.halfClosed = false;
    this.messages = new MessageQueue(() => this.fail(new RpcError('RESOURCE_EXHAUSTED', `more than ${MAX_BUFFERED_MESSAGES} messages are waiting for the page to read them`)));
    this.lastMessage = undefined;
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The iterator reports the error; the promise must not also count as unhandled.
    this.result.catch(() => null);
    if (Number.isFinite(timeoutMs) && timeoutMs > 0) {
      this.timer = setTimeout(() => this.fail(new RpcError('DEADLINE_EXCEEDED', `no answer within ${timeoutMs} ms`)), Math.min(timeoutMs + TIMEOUT_GRACE_MS, MAX_TIMER_MS));
    }
    if (signal) {
      this.signal = signal;
      this.onAbort = () => this.cancel();
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** A server frame for this call. */
  onFrame(frame) {
    if (this.ended) return;
    if (frame.headers) {
      this.headers = frame.headers;
      this.onHeaders?.(frame.headers);
    }
    if ('message' in frame) {
      this.lastMessage = frame.message;
      this.messages.push(frame.message);
    }
    if (frame.end) {
      const { code = 'UNKNOWN', message = '', details = [], trailers = {} } = frame.end;
      if (code === 'OK') this.finish({ trailers });
      else this.finish({ error: new RpcError(code, message, { details, trailers, headers: this.headers }) });
    }
  }

  send(message) {
    if (this.ended) throw new RpcError('FAILED_PRECONDITION', 'the call has ended');
    if (this.halfClosed) throw new RpcError('FAILED_PRECONDITION', 'the call was half-closed (end() was called)');
    this.client.sendFrame({ id: this.id, message: message ?? {} }, this);
  }

  end() {
    if (this.ended || this.halfClosed) return;
    this.halfClosed = true;
    this.client.sendFrame({ id: this.id, half_close: true }, this);
  }

  cancel() {
    if (this.ended) return;
    this.client.sendFrame({ id: this.id, cancel: true }, null);
    this.finish({ error: new RpcError('CANCELLED', 'cancelled by the client') });
  }

  /** Ends the call locally with `error` and tells the server to stop it. */
  fail(error) {
    if (this.ended) return;
    this.client.sendFrame({ id: this.id, cancel: true }, null);
    this.finish({ error });
  }

  finish({ error = null, trailers = {} }) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.client.forget(this);
    this.trailers = trailers;
    this.messages.close(error);
    if (error) this.reject(error);
    else this.resolve({ message: this.lastMessage, headers: this.headers, trailers });
  }

  /** An async iterator over the response messages; leaving the loop early cancels. */
  iterator() {
    return {
      next: () => this.messages.next(),
      return: (value) => {
        this.cancel();
        return Promise.resolve({ value, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}

/** A client of one gateway's /ws. */
export class RpcClient extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.socket = null;
    this.opening = null;
    this.pending = [];
    this.calls = new Map();
    this.nextId = 1;
    this.stats = { opened: 0, sent: 0, received: 0 };
  }

  /** True while the socket is open (calls then start without waiting for a connection). */
  get connected() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Resolves once the socket is open (opening it if needed); rejects with UNAVAILABLE. */
  connect() {
    if (this.socket?.readyState === WebSocket.OPEN) return Promise.resolve();
    if (this.opening && this.socket?.readyState === WebSocket.CONNECTING) return this.opening;
    const opening = new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this.url);
      } catch (err) {
        reject(new RpcError('UNAVAILABLE', `cannot open ${this.url}: ${err?.message || err}`));
        return;
      }
      this.socket = socket;
      const timer = setTimeout(() => {
        socket.close();
        reject(new RpcError('UNAVAILABLE', `${this.url} did not open within ${CONNECT_TIMEOUT_MS / 1000} s`));
      }, CONNECT_TIMEOUT_MS);
      socket.addEventListener('open', () => {
        clearTimeout(timer);
        this.stats.opened += 1;
        for (const frame of this.pending.splice(0)) socket.send(frame);
        this.dispatchEvent(new Event('open'));
        resolve();
      });
      socket.addEventListener('message', (event) => this.onSocketMessage(event));
      socket.addEventListener('close', (event) => {
        clearTimeout(timer);
        const reason = `the WebSocket ${this.url} closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`;
        if (this.socket === socket) {
          this.socket = null;
          this.pending = [];
        }
        reject(new RpcError('UNAVAILABLE', reason));
        // Only this socket's calls: a newer socket may already carry others.
        for (const call of [...this.calls.values()]) {
          if (call.socket === socket) call.finish({ error: new RpcError('UNAVAILABLE', reason) });
        }
        this.dispatchEvent(new CustomEvent('close', { detail: { code: event.code, reason: event.reason } }));
      });
    });
    this.opening = opening;
    opening.catch(() => null).finally(() => {
      if (this.opening === opening) this.opening = null;
    });
    return opening;
  }

  /** Closes the socket; running calls fail with UNAVAILABLE. */
  close() {
    this.socket?.close(1000, 'client closed');
  }

  /** One unary call; resolves to the response message. */
  async unary(method, message = {}, options = {}) {
    const call = this.open(method, message, options);
    const { message: response } = await call.result;
    if (response === undefined) throw new RpcError('INTERNAL', 'the call ended OK without a response message');
    return response;
  }

  /** A server-streaming call: an async iterator of the response messages (also has cancel()). */
  serverStream(method, message = {}, options = {}) {
    const call = this.open(method, message, options);
    const iterator = call.iterator();
    iterator.cancel = () => call.cancel();
    iterator.call = call;
    return iterator;
  }

  /** A client-streaming call: send() messages, end() them; `response` resolves to the answer. */
  clientStream(method, options = {}) {
    const call = this.open(method, undefined, options);
    return {
      send: (message) => call.send(message),
      end: () => call.end(),
      cancel: () => call.cancel(),
      call,
      response: call.result.then(({ message }) => {
        if (message === undefined) throw new RpcError('INTERNAL', 'the call ended OK without a response message');
        return message;
      }),
    };
  }

  /** A bidi-streaming call: send(), end() (half-close), cancel(), and async iteration of the answers. */
  bidi(method, options = {}) {
    const call = this.open(method, undefined, options);
    const iterator = call.iterator();
    return {
      send: (message) => call.send(message),
      end: () => call.end(),
      cancel: () => call.cancel(),
      call,
      /** Resolves when the call ends OK, rejects with its RpcError. */
      done: call.result,
      next: () => iterator.next(),
      return: (value) => iterator.return(value),
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
  }

  /** Opens a call: its first frame goes out now, or when the socket opens. */
  open(method, message, { metadata, timeoutMs, signal, onHeaders, jsonNames, jsonDefaults } = {}) {
    const id = this.nextId;
    this.nextId += 1;
    const call = new Call(this, id, { timeoutMs, signal, onHeaders });
    if (signal?.aborted) {
      call.finish({ error: new RpcError('CANCELLED', 'cancelled by the client') });
      return call;
    }
    this.calls.set(id, call);
    const frame = { id, method };
    if (message !== undefined) frame.message = message;
    if (metadata && Object.keys(metadata).length) frame.metadata = metadata;
    if (Number.isFinite(timeoutMs) && timeoutMs > 0) frame.timeout_ms = Math.ceil(timeoutMs);
    if (jsonNames) frame.json_names = jsonNames;
    if (jsonDefaults) frame.json_defaults = jsonDefaults;
    this.sendFrame(frame, call);
    call.socket = this.socket;
    return call;
  }

  /** Sends (or holds until open) one frame; a failure ends `call` when one is given. */
  sendFrame(frame, call) {
    const text = JSON.stringify(frame);
    if (this.socket?.readyState === WebSocket.OPEN) {
      // The browser queues sends without limit: a call that outpaces the network stops here.
      if (call && this.socket.bufferedAmount > MAX_UNSENT_BYTES) {
        call.fail(new RpcError('RESOURCE_EXHAUSTED', `more than ${MAX_UNSENT_BYTES} bytes are waiting to be sent on the WebSocket`));
        return;
      }
      this.socket.send(text);
      this.stats.sent += 1;
      return;
    }
    // Cancels need no socket: a call the server never heard of is simply dropped.
    if (!call) {
      this.pending = this.pending.filter((held) => !held.startsWith(`{"id":${frame.id},`));
      return;
    }
    if (this.pending.length >= MAX_PENDING_FRAMES) {
      call.finish({ error: new RpcError('RESOURCE_EXHAUSTED', `more than ${MAX_PENDING_FRAMES} frames are waiting for the WebSocket to open`) });
      return;
    }
    this.pending.push(text);
    this.stats.sent += 1;
    // Opens a new socket when there is none (or the old one is closing).
    this.connect().catch((error) => call.finish({ error }));
  }

  forget(call) {
    this.calls.delete(call.id);
  }

  onSocketMessage(event) {
    // Binary frames answer calls opened with {binary: true}, which this client never asks for.
    if (typeof event.data !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      this.dispatchEvent(new CustomEvent('protocol-error', { detail: 'unreadable frame from /ws' }));
      return;
    }
    this.stats.received += 1;
    if (frame?.error) {
      const { code = 'UNKNOWN', message = '', id } = frame.error;
      const call = id === undefined ? null : this.calls.get(id);
      // FAILED_PRECONDITION refuses one message and leaves the call running; any other refusal
      // means the call cannot go on as the page meant it to.
      if (call && code !== 'FAILED_PRECONDITION') call.fail(new RpcError(code, message));
      else this.dispatchEvent(new CustomEvent('protocol-error', { detail: `${code}: ${message}` }));
      return;
    }
    this.calls.get(frame?.id)?.onFrame(frame);
  }
}

let shared = null;

/** The page's shared client for the gateway it was served from (created on first use). */
export function sharedClient(url) {
  if (!shared) shared = new RpcClient(url);
  return shared;
}
