// The viewport: runs one frame transport at a time (WebSocket, then SSE, then polling when
// the one before fails), draws the newest frame on the canvas, and exposes its state in the
// DOM (data-mode, data-frames, data-seq) so people and tests can see what it is doing.

import { url } from './api.js';
import { toast } from './dom.js';
import { tonemap } from './frame.js';
import { FALLBACK_ORDER, TRANSPORTS } from './transports.js';

/** No frame this long after starting a transport counts as a failure of that transport. */
export const FIRST_FRAME_TIMEOUT_MS = 5000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;

const MODE_LABELS = {
  none: 'No stream',
  ws: 'WebSocket',
  sse: 'SSE fallback',
  poll: 'Polling fallback',
};

export class Viewport extends EventTarget {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.root   the element carrying data-mode / data-frames
   * @param {HTMLCanvasElement} opts.canvas
   * @param {HTMLElement} opts.empty  placeholder shown before the first frame
   * @param {HTMLElement} opts.modeIndicator
   * @param {import('./status.js').ConnectionStatus} opts.status
   * @param {string} opts.preferred   'auto' | 'ws' | 'sse' | 'poll'
   * @param {object} opts.config      {encoding, quality, maxFps, exposure}
   */
  constructor({ root, canvas, empty, modeIndicator, status, preferred, config }) {
    super();
    this.root = root;
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.empty = empty;
    this.modeIndicator = modeIndicator;
    this.status = status;
    this.preferred = preferred;
    this.config = { ...config };
    this.mode = 'none';
    this.transport = null;
    this.framesDrawn = 0;
    this.lastSeq = -1;
    this.lastFrame = null;
    this.pending = null;
    this.decoding = false;
    this.retryDelay = RETRY_MIN_MS;
    this.firstFrameTimer = null;
    this.retryTimer = null;
    this.generation = 0;
    // A hidden tab needs no frames: ask the server to hold them (WebSocket) until it is back.
    document.addEventListener('visibilitychange', () => this.control({ type: document.hidden ? 'pause' : 'resume' }));
  }

  /** Starts streaming with the preferred transport (again, if already running). */
  start() {
    const first = this.preferred === 'auto' ? FALLBACK_ORDER[0] : this.preferred;
    this.retryDelay = RETRY_MIN_MS;
    this.run(FALLBACK_ORDER.includes(first) ? first : FALLBACK_ORDER[0]);
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.firstFrameTimer);
    clearTimeout(this.retryTimer);
    this.transport?.stop();
    this.transport = null;
    this.setMode('none');
  }

  setPreferred(preferred) {
    this.preferred = preferred;
    this.start();
  }

  /** Changes stream settings; the WebSocket forwards them to the server at once. */
  configure(config) {
    this.config = { ...this.config, ...config };
    // The server re-sends the current frame in the new look, under the same sequence number.
    this.lastSeq = -1;
    this.transport?.configure(config);
    if ('exposure' in config && this.lastFrame?.payload?.kind === 'float') this.redraw();
  }

  /** Sends a viewer control message when the current transport has a control channel. */
  control(message) {
    if (typeof this.transport?.send === 'function') this.transport.send(message);
  }

  run(mode) {
    this.generation += 1;
    const generation = this.generation;
    clearTimeout(this.firstFrameTimer);
    clearTimeout(this.retryTimer);
    this.transport?.stop();
    // Sequence numbers restart with a new connection (or a restarted server).
    this.lastSeq = -1;
    // Frames that reached the gateway before this moment are history, not latency.
    this.connectedAt = Date.now();
    this.pending = null;
    const Transport = TRANSPORTS[mode];
    let gotFrame = false;
    const hooks = {
      onFrame: (frame) => {
        if (generation !== this.generation) return;
        if (!gotFrame) {
          gotFrame = true;
          clearTimeout(this.firstFrameTimer);
          this.retryDelay = RETRY_MIN_MS;
          this.setMode(mode, true);
        }
        this.status.reportFrame();
        this.enqueue(frame);
      },
      onMessage: (message) => {
        if (generation === this.generation) this.onNotice(message);
      },
      onFail: (reason) => {
        if (generation === this.generation) this.onTransportFailed(mode, gotFrame, reason);
      },
    };
    this.transport = new Transport(hooks, this.config);
    this.setMode(mode);
    this.transport.start();
    if (document.hidden) this.control({ type: 'pause' });
    const armFirstFrameTimer = () => {
      this.firstFrameTimer = setTimeout(() => {
        if (generation !== this.generation || gotFrame) return;
        // A hidden page asked for no frames; their absence says nothing about the transport.
        if (document.hidden) armFirstFrameTimer();
        else this.transport?.fail?.(`no frame within ${FIRST_FRAME_TIMEOUT_MS / 1000} s`);
      }, FIRST_FRAME_TIMEOUT_MS);
    };
    armFirstFrameTimer();
  }

  async onTransportFailed(mode, gotFrame, reason) {
    clearTimeout(this.firstFrameTimer);
    this.root.dataset.lastFailure = `${mode}: ${reason}`;
    // Know whether the gateway is up before blaming the transport.
    const generation = this.generation;
    await this.status.check();
    if (generation !== this.generation) return;
    const index = FALLBACK_ORDER.indexOf(mode);
    const next = FALLBACK_ORDER[index + 1];
    // Fall back only when this transport never worked while the gateway and its upstream are
    // up; otherwise the outage is not the transport's fault, so retry it with backoff.
    if (!gotFrame && next && this.status.gatewayUp() && this.status.upstream !== 'down') {
      toast(`${MODE_LABELS[mode]} unavailable (${reason}); trying ${MODE_LABELS[next]}`, 'info');
      this.run(next);
      return;
    }
    this.setMode(mode, false);
    const delay = this.retryDelay;
    this.retryDelay = Math.min(RETRY_MAX_MS, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation) this.run(mode);
    }, delay);
  }

  onNotice(message) {
    if (message.type === 'config') {
      // The server applied new stream settings; frames after this show them.
      this.root.dataset.configAcks = String(Number(this.root.dataset.configAcks || 0) + 1);
    }
    if (message.type === 'upstream') this.status.reportUpstream(Boolean(message.connected));
    if (message.type === 'hello' && message.error) toast(`Render stream: ${message.error}`, 'error');
    if (message.type === 'error') toast(`Stream: ${message.message}`, 'error');
    if (message.type === 'renderFailure') toast('The render server reported a render failure', 'error');
    this.dispatchEvent(new CustomEvent('notice', { detail: message }));
  }

  /** Shows the transport in use; `live` once it has delivered a frame. */
  setMode(mode, live = false) {
    this.mode = mode;
    this.root.dataset.mode = mode;
    const label = MODE_LABELS[mode] || mode;
    const shown = live || mode === 'none' ? label : `${label} (connecting…)`;
    this.modeIndicator.dataset.mode = mode;
    this.modeIndicator.dataset.live = live ? '1' : '0';
    const labelEl = this.modeIndicator.querySelector('.label');
    if (labelEl) labelEl.textContent = shown;
    this.dispatchEvent(new CustomEvent('mode', { detail: { mode, label: shown, live } }));
  }

  /** Keeps only the newest undecoded frame so a slow decode never builds a queue. */
  enqueue(frame) {
    if (frame.seq <= this.lastSeq) return;
    this.pending = frame;
    if (!this.decoding) this.drain();
  }

  async drain() {
    this.decoding = true;
    while (this.pending) {
      const frame = this.pending;
      this.pending = null;
      try {
        await this.draw(frame);
      } catch (err) {
        toast(`Could not draw a frame: ${err?.message || err}`, 'error');
      }
    }
    this.decoding = false;
  }

  async draw(frame) {
    const { payload } = frame;
    let bitmap = null;
    if (payload.kind === 'blob') bitmap = await createImageBitmap(payload.blob);
    const width = bitmap ? bitmap.width : frame.width;
    const height = bitmap ? bitmap.height : frame.height;
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    if (bitmap) {
      this.ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
    } else if (payload.kind === 'rgba') {
      this.ctx.putImageData(new ImageData(payload.data, width, height), 0, 0);
    } else if (payload.kind === 'float') {
      const rgba = tonemap(payload.data, this.config.exposure || 0);
      this.ctx.putImageData(new ImageData(rgba, width, height), 0, 0);
    }
    this.lastSeq = Math.max(this.lastSeq, frame.seq);
    // Keep float frames so exposure changes can redraw without a new frame.
    this.lastFrame = payload.kind === 'float' ? frame : { ...frame, payload: null };
    this.framesDrawn += 1;
    this.root.dataset.frames = String(this.framesDrawn);
    this.root.dataset.seq = String(frame.seq);
    this.root.dataset.width = String(width);
    this.root.dataset.height = String(height);
    this.root.dataset.hdr = frame.hdr ? '1' : '0';
    this.root.dataset.encoding = frame.encoding;
    this.root.dataset.spp = String(frame.spp ?? '');
    this.empty.hidden = true;
    this.canvas.hidden = false;
    this.dispatchEvent(new CustomEvent('frame', { detail: { ...frame, width, height, payload: null, drawnAt: Date.now(), connectedAt: this.connectedAt } }));
  }

  redraw() {
    if (this.lastFrame?.payload) this.draw({ ...this.lastFrame }).catch(() => null);
  }

  /** 'fit' scales the image into the viewport; 'actual' shows it pixel for pixel (scrollable). */
  setZoom(zoom) {
    this.root.classList.toggle('fit', zoom === 'fit');
    this.root.classList.toggle('actual', zoom === 'actual');
    this.root.dataset.zoom = zoom;
  }

  /** Downloads the newest frame as a lossless PNG from the gateway (`/render/frame.png`);
   *  the canvas (which may show a decoded JPEG) only when the gateway has none to give. */
  async savePng() {
    if (this.framesDrawn === 0) {
      toast('No frame to save yet', 'info');
      return;
    }
    let blob = null;
    try {
      const response = await fetch(url('render/frame.png'), { cache: 'no-store', credentials: 'same-origin' });
      if (response.ok && response.headers.get('content-type')?.startsWith('image/png')) blob = await response.blob();
    } catch {
      blob = null;
    }
    if (!blob) blob = await new Promise((resolve) => this.canvas.toBlob(resolve, 'image/png'));
    if (!blob) {
      toast('Could not encode the frame as PNG', 'error');
      return;
    }
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `octaneweb-frame-${this.lastSeq}.png`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }
}
