// Camera control: orbit / pan / zoom around the target in spherical coordinates, sent
// through a coalescing sender (at most one call in flight, the newest state replaces any
// older pending one, bounded rate), so a slow server never makes camera moves queue up.
//
// While dragging, the states go out on one LiveLinkService.StreamCamera client stream over
// the gateway's /ws (rpc.js), ended on release; wheel and keyboard moves, and drags when /ws
// is unavailable, use LiveLinkService.SetCamera JSON calls.

import { camera as liveLink } from './octane.js';
import { toast } from './dom.js';

const ORBIT_RAD_PER_PX = 0.006;
/** Pointer travel (CSS pixels) before a press becomes a drag; the same as the pick's click. */
export const DRAG_SLOP_PX = 4;
/**
 * Wheel units (pixels) of one mouse-wheel notch: Chromium and Firefox report 100 per notch
 * in pixel mode (some platforms 120, which zooms a little more).
 */
const WHEEL_NOTCH = 100;
/**
 * Distance factor per notch towards the target: 10% closer per notch, and the same factor
 * back out. Scaled by the wheel delta, so a trackpad's many small deltas zoom smoothly.
 */
const ZOOM_PER_NOTCH = 0.9;
const ZOOM_PER_WHEEL_UNIT = -Math.log(ZOOM_PER_NOTCH) / WHEEL_NOTCH;
/** One wheel event zooms by at most this many notches (a flung wheel must not jump). */
const MAX_NOTCHES_PER_EVENT = 3;
const POLE_MARGIN = 0.02;
const MIN_DISTANCE = 1e-3;
const MAX_DISTANCE = 1e7;
const CALL_TIMEOUT_MS = 5000;
/** A drag's stream is ended and a new one opened after this long (the gateway has a deadline). */
const STREAM_ROTATE_MS = 10000;
/** After /ws or StreamCamera turned out unavailable, drags use SetCamera for this long. */
const STREAM_RETRY_MS = 30000;
/**
 * Codes that mean streaming cannot work here (no /ws, no StreamCamera in the schema), as
 * opposed to one failed stream (a bad update, a full queue), after which the next drag
 * simply opens a new one.
 */
const STREAM_UNAVAILABLE = new Set(['UNAVAILABLE', 'UNIMPLEMENTED', 'NOT_FOUND']);

// --- vector helpers (plain {x, y, z} objects, as in the JSON of livelinkapi.Vec3) ---
const vec = (x = 0, y = 0, z = 0) => ({ x, y, z });
const add = (a, b) => vec(a.x + b.x, a.y + b.y, a.z + b.z);
const sub = (a, b) => vec(a.x - b.x, a.y - b.y, a.z - b.z);
const scale = (a, s) => vec(a.x * s, a.y * s, a.z * s);
const dot = (a, b) => a.x * b.x + a.y * b.y + a.z * b.z;
const cross = (a, b) => vec(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
const length = (a) => Math.hypot(a.x, a.y, a.z);
function normalize(a, fallback = vec(0, 1, 0)) {
  const len = length(a);
  return len > 1e-12 ? scale(a, 1 / len) : { ...fallback };
}

function toVec(json, fallback) {
  if (!json || typeof json !== 'object') return { ...fallback };
  // proto3 JSON leaves out zero fields.
  return vec(Number(json.x) || 0, Number(json.y) || 0, Number(json.z) || 0);
}

/** A complete camera from GetCamera's (possibly partial) CameraState JSON. */
export function cameraFromJson(json = {}) {
  const target = toVec(json.target, vec(0, 0, 0));
  let position = toVec(json.position, vec(0, 0, 5));
  if (length(sub(position, target)) < MIN_DISTANCE) position = add(target, vec(0, 0, 5));
  const up = normalize(toVec(json.up, vec(0, 1, 0)));
  const fov = Number(json.fov) > 0 && Number(json.fov) < 180 ? Number(json.fov) : 45;
  return { position, target, up, fov };
}

/** An orthonormal basis (e1, e2, u) with u along `up`, for spherical coordinates. */
function basis(up) {
  const u = normalize(up);
  const ref = Math.abs(u.z) < 0.9 ? vec(0, 0, 1) : vec(1, 0, 0);
  const e1 = normalize(sub(ref, scale(u, dot(ref, u))));
  const e2 = cross(u, e1);
  return { e1, e2, u };
}

/** Orbits the position around the target: dTheta around `up`, dPhi towards or away from it. */
export function orbit(camera, dTheta, dPhi) {
  const { e1, e2, u } = basis(camera.up);
  const offset = sub(camera.position, camera.target);
  const r = length(offset);
  const theta = Math.atan2(dot(offset, e2), dot(offset, e1)) + dTheta;
  const cosPhi = Math.min(1, Math.max(-1, dot(offset, u) / r));
  const phi = Math.min(Math.PI - POLE_MARGIN, Math.max(POLE_MARGIN, Math.acos(cosPhi) + dPhi));
  const direction = add(add(scale(e1, Math.sin(phi) * Math.cos(theta)), scale(e2, Math.sin(phi) * Math.sin(theta))), scale(u, Math.cos(phi)));
  return { ...camera, position: add(camera.target, scale(direction, r)) };
}

/** Moves position and target together in the image plane; dx/dy in pixels of a view `viewHeight` tall. */
export function pan(camera, dx, dy, viewHeight) {
  const forward = normalize(sub(camera.target, camera.position));
  const right = normalize(cross(forward, camera.up), vec(1, 0, 0));
  const upOnScreen = cross(right, forward);
  const distance = length(sub(camera.target, camera.position));
  const unitsPerPixel = (2 * distance * Math.tan((camera.fov * Math.PI) / 360)) / Math.max(1, viewHeight);
  const delta = add(scale(right, -dx * unitsPerPixel), scale(upOnScreen, dy * unitsPerPixel));
  return { ...camera, position: add(camera.position, delta), target: add(camera.target, delta) };
}

/** Moves towards (factor < 1) or away from (factor > 1) the target. */
export function dolly(camera, factor) {
  const offset = sub(camera.position, camera.target);
  const r = length(offset);
  const next = Math.min(MAX_DISTANCE, Math.max(MIN_DISTANCE, r * factor));
  return { ...camera, position: add(camera.target, scale(offset, next / r)) };
}

/**
 * Sends values through `send` with at most one call in flight and at most `rate` calls per
 * second; while busy, a newer value replaces the pending one (the newest always wins).
 */
export class CoalescingSender {
  constructor(send, rate = 30, onChange = () => {}) {
    this.send = send;
    this.setRate(rate);
    this.onChange = onChange;
    this.pending = undefined;
    this.inFlight = false;
    this.timer = null;
    this.lastStart = -Infinity;
    this.sent = 0;
    this.replaced = 0;
  }

  setRate(rate) {
    this.minIntervalMs = 1000 / Math.min(120, Math.max(1, Number(rate) || 30));
  }

  push(value) {
    if (this.pending !== undefined) this.replaced += 1;
    this.pending = value;
    this.pump();
  }

  /** Sends the pending value as soon as no call is in flight, whatever the rate says. */
  flush() {
    if (this.pending === undefined) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.lastStart = -Infinity;
    this.pump();
  }

  pump() {
    this.onChange(this);
    if (this.inFlight || this.pending === undefined || this.timer) return;
    const wait = this.lastStart + this.minIntervalMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, wait);
      return;
    }
    const value = this.pending;
    this.pending = undefined;
    this.inFlight = true;
    this.lastStart = performance.now();
    this.onChange(this);
    Promise.resolve()
      .then(() => this.send(value))
      .catch(() => null)
      .finally(() => {
        this.inFlight = false;
        this.sent += 1;
        this.pump();
      });
  }
}

/** Mouse, touch and keyboard camera control of the viewport. */
export class CameraController extends EventTarget {
  /** `rpc`: an RpcClient (rpc.js) for streaming drags; without one every move uses SetCamera. */
  constructor({ surface, rate = 30, rpc = null }) {
    super();
    this.surface = surface;
    this.camera = null;
    this.home = null;
    this.drag = null;
    this.lastError = '';
    this.rpc = rpc;
    /** The drag's open StreamCamera call: {upload, opened, last}. */
    this.stream = null;
    this.streamsRunning = 0;
    this.streamsDone = 0;
    this.streamBlockedUntil = 0;
    this.sender = new CoalescingSender((camera) => this.sendCamera(camera), rate, (s) => this.reflect(s));
    this.attach();
  }

  /**
   * Reads the camera from the server (GetCamera). Without a home yet (page load, a
   * reconnect that cleared it) the camera read becomes home: see sceneChanged().
   */
  async load() {
    const json = await liveLink.get({ timeoutMs: CALL_TIMEOUT_MS });
    this.camera = cameraFromJson(json);
    if (!this.home) this.home = structuredClone(this.camera);
    this.surface.dataset.camera = 'ready';
    this.dispatchEvent(new CustomEvent('camera', { detail: this.camera }));
    // Have the socket ready before the first drag.
    if (this.streamingAllowed()) this.connectStreaming();
    return this.camera;
  }

  /** Opens the /ws socket in the background; if it cannot open, drags use SetCamera for a while. */
  connectStreaming() {
    this.rpc.connect().catch(() => {
      this.streamBlockedUntil = performance.now() + STREAM_RETRY_MS;
    });
  }

  async sendCamera(camera) {
    const message = { position: camera.position, target: camera.target, up: camera.up, fov: camera.fov };
    // A state left pending at release still goes on the drag's stream, so it cannot overtake
    // the stream's earlier states.
    if ((this.drag || this.stream) && this.streamingAllowed() && this.sendOnStream(message)) return;
    await this.setCamera(message);
  }

  async setCamera(message) {
    try {
      await liveLink.set(message, { timeoutMs: CALL_TIMEOUT_MS });
      this.surface.dataset.cameraTransport = 'json';
      this.lastError = '';
    } catch (err) {
      this.report(`SetCamera failed: ${err.message}`);
    }
  }

  /** One notice per distinct problem, not one per drag step. */
  report(text) {
    if (text !== this.lastError) toast(text, 'error');
    this.lastError = text;
  }

  streamingAllowed() {
    return Boolean(this.rpc) && performance.now() >= this.streamBlockedUntil;
  }

  /** Sends a state on the drag's StreamCamera call (opening one if needed); false if it cannot. */
  sendOnStream(message) {
    // No socket yet: this state goes the plain way (a hanging connect must not stall the
    // drag) and the socket opens for the states after it.
    if (!this.stream && !this.rpc.connected) {
      this.connectStreaming();
      return false;
    }
    if (this.stream && performance.now() - this.stream.opened > STREAM_ROTATE_MS) this.endStream();
    if (!this.stream) this.openStream();
    try {
      this.stream.upload.send(message);
      this.stream.last = message;
      return true;
    } catch {
      this.stream = null;
      return false;
    }
  }

  openStream() {
    const upload = this.rpc.clientStream(liveLink.STREAM_METHOD);
    const stream = { upload, opened: performance.now(), last: null };
    this.stream = stream;
    this.streamsRunning += 1;
    this.reflect(this.sender);
    upload.response
      .then(() => {
        this.streamsDone += 1;
        this.surface.dataset.cameraStreams = String(this.streamsDone);
        this.surface.dataset.cameraTransport = 'ws';
        this.lastError = '';
      })
      .catch((err) => {
        if (this.stream === stream) this.stream = null;
        if (STREAM_UNAVAILABLE.has(err.code)) {
          // Streaming does not work here now: drags use SetCamera for a while.
          this.streamBlockedUntil = performance.now() + STREAM_RETRY_MS;
          this.surface.dataset.cameraTransport = 'json';
        } else if (err.code !== 'CANCELLED') {
          this.report(`StreamCamera failed: ${err.message}`);
        }
        // What the stream carried may be lost: the newest state goes the plain way.
        if (stream.last && this.camera) {
          const c = this.camera;
          return this.setCamera({ position: c.position, target: c.target, up: c.up, fov: c.fov });
        }
        return null;
      })
      .finally(() => {
        this.streamsRunning -= 1;
        this.reflect(this.sender);
      });
  }

  /** Half-closes the drag's stream: the server applies what it got and answers. */
  endStream() {
    const stream = this.stream;
    this.stream = null;
    stream?.upload.end();
  }

  reflect(sender) {
    this.surface.dataset.cameraSent = String(sender.sent);
    const senderBusy = sender.inFlight || sender.pending !== undefined;
    // Released and nothing left to send: the drag's stream is complete.
    if (!senderBusy && !this.drag && this.stream) this.endStream();
    this.surface.dataset.cameraBusy = senderBusy || this.streamsRunning > 0 ? '1' : '0';
  }

  update(camera) {
    this.camera = camera;
    this.sender.push(structuredClone(camera));
    this.dispatchEvent(new CustomEvent('camera', { detail: camera }));
  }

  orbitBy(dxPx, dyPx) {
    if (this.camera) this.update(orbit(this.camera, -dxPx * ORBIT_RAD_PER_PX, -dyPx * ORBIT_RAD_PER_PX));
  }

  /** Height of the image on screen, so panning moves the scene with the pointer. */
  shownHeight() {
    const canvas = this.surface.querySelector('canvas');
    return canvas?.getBoundingClientRect().height || this.surface.clientHeight || 1;
  }

  panBy(dxPx, dyPx) {
    if (this.camera) this.update(pan(this.camera, dxPx, dyPx, this.shownHeight()));
  }

  zoomBy(wheelDelta) {
    if (this.camera) this.update(dolly(this.camera, Math.exp(wheelDelta * ZOOM_PER_WHEEL_UNIT)));
  }

  /**
   * A new scene was loaded or the project reset (`projectManagerChanged`). "Reset view" means
   * the camera the scene defines, i.e. the camera the scene came with when it was loaded:
   * not the camera at page load (a different scene by now), and not the camera the server
   * reports when Reset is pressed (LiveLink moves, ours and other viewers', change the scene's
   * camera node too, so by then it is wherever the view was dragged). So the camera is read
   * now, before anyone moves it, and becomes home; the view continues from it as well.
   */
  sceneChanged() {
    this.home = null;
    const generation = (this.sceneGeneration = (this.sceneGeneration || 0) + 1);
    this.homeRead = liveLink.get({ timeoutMs: CALL_TIMEOUT_MS })
      .then((json) => {
        if (generation !== this.sceneGeneration) return;
        const camera = cameraFromJson(json);
        this.home = structuredClone(camera);
        // A drag in progress keeps its camera; otherwise moves continue from the new scene's.
        if (!this.drag) {
          this.camera = camera;
          this.dispatchEvent(new CustomEvent('camera', { detail: camera }));
        }
        this.surface.dataset.cameraHome = String(generation);
      })
      .catch((err) => this.report(`Reading the new scene's camera failed: ${err.message}`));
    return this.homeRead;
  }

  /** Returns to the scene's camera (see sceneChanged), once it is known. */
  async reset() {
    if (!this.home && this.homeRead) await this.homeRead;
    if (this.home) this.update(structuredClone(this.home));
  }

  attach() {
    const el = this.surface;
    /** Active touch points (id -> {x, y}); two of them pinch (zoom) and pan together. */
    const touches = new Map();
    let pinch = null;
    const pinchState = () => {
      const [a, b] = [...touches.values()];
      return { distance: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
    };
    el.addEventListener('contextmenu', (event) => event.preventDefault());
    el.addEventListener('pointerdown', (event) => {
      if (event.button !== 0 && event.button !== 2) return;
      el.focus({ preventScroll: true });
      el.setPointerCapture(event.pointerId);
      if (event.pointerType === 'touch') {
        touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
        if (touches.size === 2) {
          this.drag = null;
          pinch = pinchState();
          return;
        }
        if (touches.size > 2) return;
      }
      this.drag = { id: event.pointerId, x: event.clientX, y: event.clientY, pan: event.button === 2 || event.shiftKey };
      el.classList.add('dragging');
    });
    el.addEventListener('pointermove', (event) => {
      if (pinch && touches.has(event.pointerId)) {
        touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
        const next = pinchState();
        if (this.camera && next.distance > 1 && pinch.distance > 1) {
          const panned = pan(this.camera, next.x - pinch.x, next.y - pinch.y, this.shownHeight());
          this.update(dolly(panned, pinch.distance / next.distance));
        }
        pinch = next;
        return;
      }
      const drag = this.drag;
      if (!drag || drag.id !== event.pointerId) return;
      // A press that has not moved past the slop is still a click (a pick): the camera
      // waits, then takes the whole way from the press at once.
      if (!drag.moving) {
        if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) <= DRAG_SLOP_PX) return;
        drag.moving = true;
      }
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      drag.x = event.clientX;
      drag.y = event.clientY;
      if (drag.pan || event.shiftKey) this.panBy(dx, dy);
      else this.orbitBy(dx, dy);
    });
    const end = (event) => {
      touches.delete(event.pointerId);
      if (touches.size < 2) pinch = null;
      if (this.drag?.id !== event.pointerId) return;
      this.drag = null;
      el.classList.remove('dragging');
      // The rate spaces states out while the pointer moves; the last one, where the user let
      // go, should not wait for the next slot.
      this.sender.flush();
      this.reflect(this.sender);
    };
    el.addEventListener('pointerup', end);
    el.addEventListener('pointercancel', end);
    el.addEventListener('wheel', (event) => {
      event.preventDefault();
      // Lines (Firefox) count as a third of a notch, pages as four notches.
      const unit = event.deltaMode === 1 ? WHEEL_NOTCH / 3 : event.deltaMode === 2 ? 4 * WHEEL_NOTCH : 1;
      const limit = MAX_NOTCHES_PER_EVENT * WHEEL_NOTCH;
      this.zoomBy(Math.max(-limit, Math.min(limit, event.deltaY * unit)));
    }, { passive: false });
    el.addEventListener('keydown', (event) => this.onKey(event));
  }

  onKey(event) {
    const step = 15;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      if (event.shiftKey) this.panBy(dx, dy);
      else this.orbitBy(dx, dy);
    } else if (event.key === '+' || event.key === '=') {
      this.zoomBy(-WHEEL_NOTCH);
    } else if (event.key === '-' || event.key === '_') {
      this.zoomBy(WHEEL_NOTCH);
    } else {
      return;
    }
    event.preventDefault();
  }
}
