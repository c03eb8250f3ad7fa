// The viewport: runs one frame transport at a time (WebSocket, then SSE, then polling when
// the one before fails), tells the gateway what it displays (its size, or at 1:1 the visible
// region of the full frame), draws the newest frame on the canvas, and exposes its state in
// the DOM (data-mode, data-frames, data-seq, data-view, ...) so people and tests can see what
// it is doing.

import { url } from './api.js';
import { toast } from './dom.js';
import { imageToFrame, tonemap, wholeFrame } from './frame.js';
import { FALLBACK_ORDER, TRANSPORTS } from './transports.js';
import { describeView, displaySize, FULL_VIEW, sameView, visibleCrop } from './view.js';

/** No frame this long after starting a transport counts as a failure of that transport. */
export const FIRST_FRAME_TIMEOUT_MS = 5000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
/** A resize or scroll settles this long before the new view is asked for. */
export const VIEW_DEBOUNCE_MS = 100;
/** A decoded frame waits at most this for a display frame (rAF stalls in occluded windows). */
const DISPLAY_WAIT_MS = 250;

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
    // Frames handed over by the transport, and those replaced by a newer one before drawing.
    this.framesReceived = 0;
    this.framesDropped = 0;
    // The most frames ever waiting behind the one being decoded and drawn (by design, one).
    this.queuedMax = 0;
    this.inProcess = 0;
    this.lastSeq = -1;
    this.lastFrame = null;
    /** The frame on screen (without payload, unless float) and its bitmap, for re-layout. */
    this.shown = null;
    /** How the shown frame maps onto the canvas: {frame, scaleX, scaleY} (canvas px per full-frame px). */
    this.geometry = null;
    this.pending = null;
    this.decoding = false;
    this.bitmapsOpen = 0;
    this.worker = null;
    this.workerJobs = new Map();
    this.workerJobSeq = 0;
    this.zoom = root.dataset.zoom || 'fit';
    /** The view last asked of the transports (see view.js). */
    this.view = null;
    this.viewTimer = null;
    this.retryDelay = RETRY_MIN_MS;
    this.firstFrameTimer = null;
    this.retryTimer = null;
    this.generation = 0;
    // A hidden tab needs no frames: ask the server to hold them (WebSocket) until it is back.
    document.addEventListener('visibilitychange', () => this.control({ type: document.hidden ? 'pause' : 'resume' }));
    // The display size follows the box (window resizes, the side panel) and the screen's
    // pixel ratio (browser zoom, a move to another monitor); at 1:1 the view follows scrolling.
    new ResizeObserver(() => this.scheduleView()).observe(root);
    root.addEventListener('scroll', () => {
      this.followScroll();
      if (this.zoom === 'actual') this.scheduleView();
    }, { passive: true });
    this.watchPixelRatio();
    this.view = this.currentView();
    this.config.view = this.view;
    this.root.dataset.view = describeView(this.view);
    this.showCounters();
  }

  /** The overlays (HUD, badges) stay put while the image scrolls under them at 1:1. */
  followScroll() {
    this.root.style.setProperty('--scroll-left', `${this.root.scrollLeft}px`);
    this.root.style.setProperty('--scroll-top', `${this.root.scrollTop}px`);
  }

  watchPixelRatio() {
    const query = matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    query.addEventListener('change', () => {
      this.watchPixelRatio();
      this.scheduleView();
    }, { once: true });
  }

  /**
   * The view this viewport needs now: in 'fit' mode its box in device pixels (the gateway
   * fits the frame inside); at 1:1 the full resolution, cropped to the part of the frame that
   * shows when it does not all fit.
   */
  currentView() {
    if (this.zoom === 'actual') {
      const frame = this.geometry?.frame;
      if (!frame || this.canvas.hidden) return FULL_VIEW;
      const box = this.root.getBoundingClientRect();
      const left = box.left + this.root.clientLeft;
      const top = box.top + this.root.clientTop;
      const visible = { left, top, right: left + this.root.clientWidth, bottom: top + this.root.clientHeight };
      const crop = visibleCrop(visible, this.canvas.getBoundingClientRect(), frame.fullWidth, frame.fullHeight);
      return { width: 0, height: 0, crop };
    }
    const size = displaySize(this.root.clientWidth, this.root.clientHeight, window.devicePixelRatio);
    return size ? { ...size, crop: null } : this.view;
  }

  scheduleView() {
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => this.updateView(), VIEW_DEBOUNCE_MS);
  }

  /** Asks the transport for the current view when it changed. */
  updateView() {
    clearTimeout(this.viewTimer);
    const view = this.currentView();
    if (!view || sameView(view, this.view)) return;
    this.view = view;
    this.root.dataset.view = describeView(view);
    this.configure({ view });
  }

  /** Starts streaming with the preferred transport (again, if already running). */
  start() {
    const first = this.preferred === 'auto' ? FALLBACK_ORDER[0] : this.preferred;
    this.retryDelay = RETRY_MIN_MS;
    this.run(FALLBACK_ORDER.includes(first) ? first : FALLBACK_ORDER[0]);
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.viewTimer);
    if (this.pending) this.dropFrame();
    this.pending = null;
    this.showCounters();
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
    // The server re-sends the current frame in the new look (or view), under the same
    // sequence number.
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
    if (this.pending) this.dropFrame();
    this.pending = null;
    this.config.view = this.view;
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

  /**
   * Takes a frame from the transport. At most one frame waits behind the one being decoded
   * and drawn: a newer frame replaces it (counted as dropped), so a slow page skips frames
   * instead of falling behind.
   */
  enqueue(frame) {
    this.framesReceived += 1;
    if (frame.seq <= this.lastSeq) {
      this.dropFrame();
    } else {
      if (this.pending) this.dropFrame();
      this.pending = frame;
    }
    this.showCounters();
    if (!this.decoding) this.drain();
  }

  dropFrame() {
    this.framesDropped += 1;
  }

  async drain() {
    this.decoding = true;
    while (this.pending) {
      const frame = this.pending;
      this.pending = null;
      this.inProcess = 1;
      const generation = this.generation;
      let bitmap = null;
      try {
        bitmap = await this.decode(frame);
        // A polled frame without size headers: the image is all there is to go by.
        if (!(frame.region?.width > 0)) Object.assign(frame, wholeFrame(bitmap.width, bitmap.height));
        // Draw when the screen can show it; newer frames meanwhile wait in `pending`.
        await nextDisplayFrame();
        if (frame.redraw || (generation === this.generation && frame.seq > this.lastSeq)) {
          this.show(frame, bitmap);
          bitmap = null;
        } else {
          this.dropFrame();
        }
      } catch (err) {
        this.dropFrame();
        toast(`Could not draw a frame: ${err?.message || err}`, 'error');
      } finally {
        if (bitmap) this.closeBitmap(bitmap);
        this.inProcess = 0;
        this.showCounters();
      }
    }
    this.decoding = false;
  }

  /** Decodes a frame's payload into an ImageBitmap, off the page's thread. */
  async decode(frame) {
    const { payload } = frame;
    let bitmap;
    // Chromium and Firefox decode a Blob's JPEG or PNG on a thread of their own.
    if (payload.kind === 'blob') bitmap = await createImageBitmap(payload.blob);
    else bitmap = await this.pixelsToBitmap(frame);
    this.bitmapsOpen += 1;
    return bitmap;
  }

  closeBitmap(bitmap) {
    bitmap.close();
    this.bitmapsOpen -= 1;
  }

  /** Raw RGBA (or float RGBA, tone mapped) to a bitmap in the pixel worker. */
  pixelsToBitmap(frame) {
    const { payload, width, height } = frame;
    const exposure = this.config.exposure || 0;
    const gamma = this.config.gamma || 2.2;
    const worker = this.pixelWorker();
    if (!worker) {
      const rgba = payload.kind === 'float' ? tonemap(payload.data, exposure, gamma) : payload.data;
      return createImageBitmap(new ImageData(rgba, width, height));
    }
    const data = payload.data;
    this.workerJobSeq += 1;
    const id = this.workerJobSeq;
    return new Promise((resolve, reject) => {
      // A transferred view reads as empty: keep where the pixels lie in the buffer.
      this.workerJobs.set(id, { resolve, reject, payload, type: data.constructor, byteOffset: data.byteOffset, length: data.length });
      worker.postMessage({
        id, kind: payload.kind, buffer: data.buffer, byteOffset: data.byteOffset, length: data.length, width, height, exposure, gamma,
      }, [data.buffer]);
    });
  }

  pixelWorker() {
    if (this.worker !== null) return this.worker;
    try {
      this.worker = new Worker(new URL('./pixel-worker.js', import.meta.url), { type: 'module' });
    } catch {
      this.worker = false;
      return this.worker;
    }
    this.worker.addEventListener('message', ({ data }) => {
      const job = this.workerJobs.get(data.id);
      if (!job) return;
      this.workerJobs.delete(data.id);
      // The pixels come back with the answer; a float frame keeps them for exposure changes.
      job.payload.data = new job.type(data.buffer, job.byteOffset, job.length);
      if (data.error) job.reject(new Error(data.error));
      else job.resolve(data.bitmap);
    });
    this.worker.addEventListener('error', (event) => {
      for (const job of this.workerJobs.values()) job.reject(new Error(`pixel worker failed: ${event.message || 'error'}`));
      this.workerJobs.clear();
      this.worker.terminate();
      this.worker = false;
    });
    return this.worker;
  }

  /** Puts a decoded frame on screen and keeps it for re-layout (zoom changes). */
  show(frame, bitmap) {
    const previous = this.shown;
    this.shown = { frame: { ...frame, payload: frame.payload?.kind === 'float' ? frame.payload : null }, bitmap };
    if (previous?.bitmap) this.closeBitmap(previous.bitmap);
    const fullSizeChanged = this.geometry?.frame.fullWidth !== frame.fullWidth || this.geometry?.frame.fullHeight !== frame.fullHeight;
    this.paint();
    this.lastSeq = Math.max(this.lastSeq, frame.seq);
    // Keep float frames so exposure changes can redraw without a new frame.
    if (!frame.redraw) this.lastFrame = frame.payload?.kind === 'float' ? frame : { ...frame, payload: null };
    this.framesDrawn += 1;
    const { dataset } = this.root;
    dataset.frames = String(this.framesDrawn);
    dataset.seq = String(frame.seq);
    dataset.width = String(bitmap.width);
    dataset.height = String(bitmap.height);
    dataset.fullWidth = String(frame.fullWidth);
    dataset.fullHeight = String(frame.fullHeight);
    dataset.frameRegion = `${frame.region.x},${frame.region.y},${frame.region.width},${frame.region.height}`;
    dataset.hdr = frame.hdr ? '1' : '0';
    dataset.encoding = frame.encoding;
    dataset.spp = String(frame.spp ?? '');
    this.empty.hidden = true;
    this.canvas.hidden = false;
    // At 1:1 the canvas takes the full frame's size: what shows of it may have changed.
    if (fullSizeChanged && this.zoom === 'actual') this.scheduleView();
    this.dispatchEvent(new CustomEvent('frame', {
      detail: { ...frame, width: bitmap.width, height: bitmap.height, payload: null, drawnAt: Date.now(), connectedAt: this.connectedAt },
    }));
  }

  /**
   * Draws the shown frame. The canvas always stands for the whole frame: at 1:1 one canvas
   * pixel per full-frame pixel (a crop lands at its place, the rest keeps what was there),
   * fitted at the image's own scale (the browser scales the canvas into the box).
   */
  paint() {
    const { frame, bitmap } = this.shown ?? {};
    if (!bitmap) return;
    const { region } = frame;
    let scaleX = this.zoom === 'actual' ? 1 : bitmap.width / region.width;
    let scaleY = this.zoom === 'actual' ? 1 : bitmap.height / region.height;
    const partial = region.width < frame.fullWidth || region.height < frame.fullHeight;
    const same = this.geometry && this.geometry.frame.fullWidth === frame.fullWidth && this.geometry.frame.fullHeight === frame.fullHeight;
    if (this.zoom === 'fit' && partial && same) {
      // A crop asked for at 1:1 arriving after the switch to fit: draw it into the frame on
      // screen at that frame's scale rather than clearing it for a canvas of the crop's.
      ({ scaleX, scaleY } = this.geometry);
    }
    const width = Math.max(1, Math.round(frame.fullWidth * scaleX));
    const height = Math.max(1, Math.round(frame.fullHeight * scaleY));
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.ctx.drawImage(bitmap, region.x * scaleX, region.y * scaleY, region.width * scaleX, region.height * scaleY);
    this.geometry = { frame: { width: bitmap.width, height: bitmap.height, region, fullWidth: frame.fullWidth, fullHeight: frame.fullHeight }, scaleX, scaleY };
  }

  /** A point on the canvas (canvas pixels) as a point of the full render (full-frame pixels). */
  canvasToFrame(canvasX, canvasY) {
    const g = this.geometry;
    if (!g) return null;
    // The shown image's pixels, then the wire contract's mapping from them to the frame's.
    const imageX = (canvasX - g.frame.region.x * g.scaleX) * (g.frame.width / (g.frame.region.width * g.scaleX));
    const imageY = (canvasY - g.frame.region.y * g.scaleY) * (g.frame.height / (g.frame.region.height * g.scaleY));
    return imageToFrame(g.frame, imageX, imageY);
  }

  /** The full frame's size in pixels (of the frame on screen), or null before the first. */
  frameSize() {
    const frame = this.geometry?.frame;
    return frame ? { width: frame.fullWidth, height: frame.fullHeight } : null;
  }

  showCounters() {
    const queued = this.framesReceived - this.framesDrawn - this.framesDropped - this.inProcess;
    this.queuedMax = Math.max(this.queuedMax, queued);
    const { dataset } = this.root;
    dataset.framesReceived = String(this.framesReceived);
    dataset.framesDropped = String(this.framesDropped);
    dataset.framesQueued = String(queued);
    dataset.framesQueuedMax = String(this.queuedMax);
    dataset.bitmapsOpen = String(this.bitmapsOpen);
  }

  /** Draws the last float frame again (at a new exposure); a waiting frame will do that anyway. */
  redraw() {
    if (!this.lastFrame?.payload || this.pending) return;
    // The same payload object: the worker hands its pixels back into it.
    this.pending = { ...this.lastFrame, redraw: true };
    this.framesReceived += 1;
    if (!this.decoding) this.drain();
  }

  /** 'fit' scales the image into the viewport; 'actual' shows it pixel for pixel (scrollable). */
  setZoom(zoom) {
    this.zoom = zoom;
    this.root.classList.toggle('fit', zoom === 'fit');
    this.root.classList.toggle('actual', zoom === 'actual');
    this.root.dataset.zoom = zoom;
    this.paint();
    // Fit does not scroll: drop a position left from 1:1 (the overlays, moved along with it,
    // would otherwise keep it alive).
    if (zoom === 'fit') this.root.scrollTo(0, 0);
    this.followScroll();
    this.updateView();
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

/** Resolves at the next display frame, or after DISPLAY_WAIT_MS when none comes. */
function nextDisplayFrame() {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, DISPLAY_WAIT_MS);
    requestAnimationFrame(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
