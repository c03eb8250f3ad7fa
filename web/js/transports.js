// The three ways frames reach the page, behind one interface:
//
//   const t = new XTransport(hooks, options); t.start(); ... t.stop();
//   hooks.onFrame(frame)        a decoded frame (see frame.js)
//   hooks.onMessage(json)       a server notice (hello, statistics, renderFailure, ...)
//   hooks.onFail(reason)        the transport stopped working; the viewport decides what next
//   t.configure(config)         {encoding, quality, maxFps, exposure, gamma, view}
//
// `view` is what the viewport displays (view.js): WebSocket and polling ask the gateway for
// frames sized (or cropped) to it; SSE, the original proxy's stream, always carries full frames.
//
// A transport calls onFail at most once and then stays silent.

import { request, url, wsUrl } from './api.js';
import { decodeBinaryFrame, decodeSseImage, FrameError, viewFromHeaders } from './frame.js';
import { addViewParams, sameView, viewMessage } from './view.js';

class Transport {
  constructor(hooks, config) {
    this.hooks = hooks;
    this.config = { ...config };
    this.active = false;
    this.failed = false;
  }

  start() {
    this.active = true;
  }

  stop() {
    this.active = false;
  }

  configure(config) {
    this.config = { ...this.config, ...config };
  }

  fail(reason) {
    if (!this.active || this.failed) return;
    this.failed = true;
    this.stop();
    this.hooks.onFail(reason);
  }

  frame(frame) {
    // When it arrived (ms since the epoch, sub-millisecond), for latency figures.
    frame.receivedAt = performance.timeOrigin + performance.now();
    if (this.active) this.hooks.onFrame(frame);
  }

  notice(message) {
    if (this.active) this.hooks.onMessage(message);
  }
}

/** GET /render/ws: binary frames with an 80-byte header, JSON notices, JSON control messages. */
export class WsTransport extends Transport {
  start() {
    super.start();
    let socket;
    try {
      socket = new WebSocket(wsUrl('render/ws'));
    } catch (err) {
      queueMicrotask(() => this.fail(`WebSocket refused: ${err?.message || err}`));
      return;
    }
    this.socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('open', () => {
      this.sendConfig();
      if (this.heldState?.type === 'pause') this.send(this.heldState);
    });
    socket.addEventListener('message', (event) => this.onSocketMessage(event));
    socket.addEventListener('error', () => this.fail('WebSocket error'));
    socket.addEventListener('close', (event) => this.fail(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`));
  }

  stop() {
    super.stop();
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) {
      try {
        socket.close(1000, 'viewer stopped');
      } catch {
        // Closing a socket that is still connecting can throw in old browsers; it is gone anyway.
      }
    }
  }

  configure(config) {
    super.configure(config);
    this.sendConfig(config);
    if ('view' in config) this.sendView();
  }

  /**
   * Asks for frames in the viewport's view, once the gateway said (in its hello) that it
   * serves views: an older one refuses the whole config message for an unknown field.
   * The view goes alone, so a refused view (a crop outside a frame that just shrank) never
   * takes the encoding or exposure with it.
   */
  sendView() {
    const view = this.config.view;
    if (!this.servesViews || !view || sameView(view, this.sentView)) return;
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    this.sentView = view;
    this.send(viewMessage(view));
  }

  /** Sends the stream settings the user chose (all of them when `partial` is omitted). */
  sendConfig(partial = this.config) {
    const message = { type: 'config' };
    if (partial.encoding) message.encoding = partial.encoding;
    if (Number.isFinite(partial.quality)) message.quality = partial.quality;
    if (Number.isFinite(partial.maxFps)) message.max_fps = partial.maxFps;
    if (Number.isFinite(partial.exposure)) message.exposure = partial.exposure;
    if (Number.isFinite(partial.gamma)) message.gamma = partial.gamma;
    if (Object.keys(message).length > 1) this.send(message);
  }

  /** Sends a control message (e.g. {type: 'pause'}); one sent while connecting goes out on open. */
  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
    else if (message.type === 'pause' || message.type === 'resume') this.heldState = message;
  }

  onSocketMessage(event) {
    if (!this.active) return;
    if (typeof event.data === 'string') {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        this.notice({ type: 'error', message: 'unreadable text message from /render/ws' });
        return;
      }
      if (message?.type === 'hello') {
        this.servesViews = 'width' in message;
        this.sentView = null;
        this.sendView();
      }
      this.notice(message);
      return;
    }
    try {
      this.frame(decodeBinaryFrame(event.data));
    } catch (err) {
      this.notice({ type: 'error', message: err instanceof FrameError ? err.message : String(err) });
    }
  }
}

/** GET /render/stream: the original proxy's Server-Sent Events with base64 RGBA images. */
export class SseTransport extends Transport {
  start() {
    super.start();
    this.seq = 0;
    // The original proxy wants a registration before streaming; ours streams either way.
    request('render/register-callback', { method: 'POST', timeoutMs: 3000 })
      .catch(() => null)
      .finally(() => this.open());
  }

  open() {
    if (!this.active) return;
    const source = new EventSource(url('render/stream'));
    this.source = source;
    source.addEventListener('message', (event) => this.onEvent(event));
    source.addEventListener('error', () => this.fail('event stream failed'));
  }

  stop() {
    super.stop();
    this.source?.close();
    this.source = null;
  }

  onEvent(event) {
    if (!this.active) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      this.notice({ type: 'error', message: 'unreadable event from /render/stream' });
      return;
    }
    if (message?.type === 'newImage') {
      try {
        this.seq += 1;
        this.frame(decodeSseImage(message, this.seq));
      } catch (err) {
        this.notice({ type: 'error', message: err?.message || String(err) });
      }
    } else if (message?.type === 'newStatistics') {
      this.notice({ ...message, type: 'statistics' });
    } else if (message?.type && message.type !== 'ping' && message.type !== 'connected') {
      this.notice(message);
    }
  }
}

const POLL_MIN_INTERVAL_MS = 33;
const POLL_DEFAULT_INTERVAL_MS = 100;
const POLL_WAIT_MS = 1000;

/** GET /render/frame.{jpg,png,raw} in a loop with If-None-Match, as a last resort. */
export class PollTransport extends Transport {
  start() {
    super.start();
    this.etag = '';
    this.localSeq = 0;
    this.controller = new AbortController();
    this.loop();
  }

  stop() {
    super.stop();
    this.controller?.abort();
    clearTimeout(this.timer);
  }

  interval() {
    const fps = this.config.maxFps;
    return fps > 0 ? Math.max(POLL_MIN_INTERVAL_MS, 1000 / fps) : POLL_DEFAULT_INTERVAL_MS;
  }

  configure(config) {
    super.configure(config);
    // The ETag names the frame, not its encoding or view: fetch the new look at once.
    this.etag = '';
  }

  path() {
    const params = new URLSearchParams();
    let file = 'render/frame.jpg';
    if (this.config.encoding === 'png') file = 'render/frame.png';
    else if (this.config.encoding === 'raw') file = 'render/frame.raw';
    else if (Number.isFinite(this.config.quality)) params.set('quality', String(this.config.quality));
    if (Number.isFinite(this.config.exposure) && this.config.exposure !== 0) params.set('exposure', String(this.config.exposure));
    addViewParams(params, this.config.view);
    const query = params.toString();
    return query ? `${file}?${query}` : file;
  }

  async loop() {
    while (this.active) {
      let delay = this.interval();
      if (document.hidden) {
        // Nobody is looking: poll again later.
        await new Promise((resolve) => {
          this.timer = setTimeout(resolve, POLL_WAIT_MS);
        });
        continue;
      }
      try {
        delay = await this.pollOnce();
      } catch (err) {
        if (!this.active) return;
        this.fail(err?.message || String(err));
        return;
      }
      await new Promise((resolve) => {
        this.timer = setTimeout(resolve, delay);
      });
    }
  }

  /** Fetches the newest frame once; resolves to how long to wait before the next poll. */
  async pollOnce() {
    const path = this.path();
    const headers = this.etag ? { 'If-None-Match': this.etag } : {};
    const response = await request(path, { headers, signal: this.controller.signal, timeoutMs: 10000 });
    if (response.status === 304) return this.interval();
    if (response.status === 503) {
      // No frame yet (or upstream down): the gateway is fine, wait and ask again.
      await response.body?.cancel().catch(() => null);
      return POLL_WAIT_MS;
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    this.etag = response.headers.get('ETag') || '';
    const frame = {
      seq: Number(response.headers.get('X-Frame-Seq')) || Number(this.etag.replace(/\D/g, '')) || this.localSeq + 1,
      width: Number(response.headers.get('X-Frame-Width')) || 0,
      height: Number(response.headers.get('X-Frame-Height')) || 0,
      spp: Number(response.headers.get('X-Frame-Samples-Per-Pixel')) || NaN,
      // The frame routes do not report these; the HUD shows a dash.
      renderTime: NaN,
      sps: NaN,
      gatewayTimeMs: null,
      hdr: false,
      encoding: this.config.encoding || 'jpeg',
      payload: null,
    };
    // An older gateway sends no region headers: then the image is the full frame.
    Object.assign(frame, viewFromHeaders(frame.width, frame.height, response.headers.get('X-Frame-Region'), response.headers.get('X-Frame-Full-Size')));
    if (path.includes('.raw')) {
      const buffer = await response.arrayBuffer();
      if (!(frame.width > 0 && frame.height > 0) || buffer.byteLength < frame.width * frame.height * 4) {
        throw new Error('render/frame.raw: size headers missing or body too short');
      }
      frame.payload = { kind: 'rgba', data: new Uint8ClampedArray(buffer, 0, frame.width * frame.height * 4) };
    } else {
      frame.payload = { kind: 'blob', blob: await response.blob() };
    }
    this.localSeq = frame.seq;
    this.frame(frame);
    return this.interval();
  }
}

export const TRANSPORTS = { ws: WsTransport, sse: SseTransport, poll: PollTransport };
export const FALLBACK_ORDER = ['ws', 'sse', 'poll'];
