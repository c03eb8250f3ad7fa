// Viewport tools: click to pick what is under the pointer, drag a render region, clay and
// sub-sampling modes. They speak in film pixels (of the full frame), so they work at any
// zoom, window size and view: the canvas may show the frame scaled down, or a crop of it.

import { DRAG_SLOP_PX } from './camera.js';
import { toast } from './dom.js';
import { renderEngine } from './octane.js';

/** A press that moves less than the camera's drag slop and ends within this is a click. */
const CLICK_MS = 500;
/** A region smaller than this many film pixels on a side is a slip of the hand. */
const MIN_REGION_PX = 2;

export class ViewportTools extends EventTarget {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.surface   the viewport element (pointer events)
   * @param {HTMLCanvasElement} opts.canvas
   * @param {import('./viewport.js').Viewport} opts.viewport  maps canvas pixels to film pixels
   * @param {HTMLElement} opts.regionBox  shows the active region
   * @param {HTMLElement} opts.dragBox    shows the region being dragged
   * @param {import('./selection.js').Selection} opts.selection
   */
  constructor({ surface, canvas, viewport, regionBox, dragBox, selection }) {
    super();
    this.surface = surface;
    this.canvas = canvas;
    this.viewport = viewport;
    this.regionBox = regionBox;
    this.dragBox = dragBox;
    this.selection = selection;
    this.regionMode = false;
    /** The server's region in film pixels ({x0, y0, x1, y1}, max exclusive) or null. */
    this.region = null;
    this.press = null;
    this.attach();
    new ResizeObserver(() => this.showRegion()).observe(surface);
  }

  /**
   * Where the image is on screen: the canvas box with object-fit: contain (fit) or the
   * canvas itself (1:1), as {left, top, width, height} in client pixels.
   */
  imageRect() {
    const box = this.canvas.getBoundingClientRect();
    const w = this.canvas.width;
    const hgt = this.canvas.height;
    if (!w || !hgt || !box.width || !box.height) return null;
    const scale = Math.min(box.width / w, box.height / hgt);
    const width = w * scale;
    const height = hgt * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
  }

  /**
   * Client coordinates to film pixels (clamped to the image), or null off the image. The
   * canvas may hold the frame at another scale than the film's: the viewport knows how it
   * drew the frame (the header's region and full size).
   */
  toFilm(clientX, clientY, clamp = false) {
    const rect = this.imageRect();
    const size = this.viewport.frameSize();
    if (!rect || !size) return null;
    let u = (clientX - rect.left) / rect.width;
    let v = (clientY - rect.top) / rect.height;
    if (!clamp && (u < 0 || v < 0 || u >= 1 || v >= 1)) return null;
    u = Math.min(1, Math.max(0, u));
    v = Math.min(1, Math.max(0, v));
    const film = this.viewport.canvasToFrame(u * this.canvas.width, v * this.canvas.height);
    return { x: Math.min(size.width, Math.max(0, film.x)), y: Math.min(size.height, Math.max(0, film.y)) };
  }

  /** Film pixel coordinates to client coordinates (where that point of the render shows). */
  filmToClient(x, y) {
    const rect = this.imageRect();
    const size = this.viewport.frameSize();
    if (!rect || !size) return null;
    return { x: rect.left + (x / size.width) * rect.width, y: rect.top + (y / size.height) * rect.height };
  }

  attach() {
    const el = this.surface;
    // Capture phase: a region drag must not also orbit the camera.
    el.addEventListener('pointerdown', (event) => {
      if (event.button !== 0 || (event.pointerType === 'touch' && !event.isPrimary)) return;
      this.press = { id: event.pointerId, x: event.clientX, y: event.clientY, t: performance.now(), moved: false, region: this.regionMode };
      if (this.regionMode) {
        event.stopPropagation();
        el.setPointerCapture(event.pointerId);
        this.drawDrag(event);
      }
    }, { capture: true });
    el.addEventListener('pointermove', (event) => {
      const press = this.press;
      if (!press || press.id !== event.pointerId) return;
      if (Math.hypot(event.clientX - press.x, event.clientY - press.y) > DRAG_SLOP_PX) press.moved = true;
      if (press.region) {
        event.stopPropagation();
        this.drawDrag(event);
      }
    }, { capture: true });
    const end = (event) => {
      const press = this.press;
      if (!press || press.id !== event.pointerId) return;
      this.press = null;
      if (press.region) {
        event.stopPropagation();
        this.dragBox.hidden = true;
        if (event.type === 'pointerup') this.finishRegion(press, event);
        return;
      }
      if (event.type === 'pointerup' && !press.moved && performance.now() - press.t < CLICK_MS) this.pickAt(event.clientX, event.clientY);
    };
    el.addEventListener('pointerup', end, { capture: true });
    el.addEventListener('pointercancel', end, { capture: true });
  }

  drawDrag(event) {
    const press = this.press;
    const rect = this.imageRect();
    if (!press || !rect) return;
    const x0 = Math.min(press.x, event.clientX);
    const y0 = Math.min(press.y, event.clientY);
    const x1 = Math.max(press.x, event.clientX);
    const y1 = Math.max(press.y, event.clientY);
    this.placeBox(this.dragBox, {
      left: Math.max(x0, rect.left), top: Math.max(y0, rect.top),
      right: Math.min(x1, rect.left + rect.width), bottom: Math.min(y1, rect.top + rect.height),
    });
  }

  /** Positions an overlay box given client coordinates. */
  placeBox(box, { left, top, right, bottom }) {
    const origin = this.surface.getBoundingClientRect();
    box.style.left = `${left - origin.left + this.surface.scrollLeft}px`;
    box.style.top = `${top - origin.top + this.surface.scrollTop}px`;
    box.style.width = `${Math.max(0, right - left)}px`;
    box.style.height = `${Math.max(0, bottom - top)}px`;
    box.hidden = right - left <= 0 || bottom - top <= 0;
  }

  async finishRegion(press, event) {
    const a = this.toFilm(press.x, press.y, true);
    const b = this.toFilm(event.clientX, event.clientY, true);
    if (!a || !b) return;
    const x0 = Math.floor(Math.min(a.x, b.x));
    const y0 = Math.floor(Math.min(a.y, b.y));
    const x1 = Math.ceil(Math.max(a.x, b.x));
    const y1 = Math.ceil(Math.max(a.y, b.y));
    if (x1 - x0 < MIN_REGION_PX || y1 - y0 < MIN_REGION_PX) return;
    try {
      await renderEngine.setRegion({ active: true, regionMin: { x: x0, y: y0 }, regionMax: { x: x1, y: y1 }, featherWidth: 0 });
      this.setRegionMode(false);
      await this.readRegion();
    } catch (err) {
      toast(`Could not set the render region: ${err.message}`, 'error');
    }
  }

  async clearRegion() {
    try {
      await renderEngine.clearRegion();
      await this.readRegion();
    } catch (err) {
      toast(`Could not clear the render region: ${err.message}`, 'error');
    }
  }

  setRegionMode(on) {
    this.regionMode = on;
    this.surface.classList.toggle('region-mode', on);
    this.dispatchEvent(new CustomEvent('regionmode', { detail: on }));
  }

  /** Reads the server's region and shows it. */
  async readRegion() {
    const r = await renderEngine.region();
    const active = Boolean(r.active);
    this.region = active
      ? { x0: Number(r.regionMin?.x) || 0, y0: Number(r.regionMin?.y) || 0, x1: Number(r.regionMax?.x) || 0, y1: Number(r.regionMax?.y) || 0 }
      : null;
    this.surface.dataset.region = this.region ? `${this.region.x0},${this.region.y0},${this.region.x1},${this.region.y1}` : '';
    this.showRegion();
    this.dispatchEvent(new CustomEvent('region', { detail: this.region }));
    return this.region;
  }

  showRegion() {
    const min = this.region && this.filmToClient(this.region.x0, this.region.y0);
    const max = this.region && this.filmToClient(this.region.x1, this.region.y1);
    if (!min || !max) {
      this.regionBox.hidden = true;
      return;
    }
    this.placeBox(this.regionBox, { left: min.x, top: min.y, right: max.x, bottom: max.y });
  }

  async pickAt(clientX, clientY) {
    const at = this.toFilm(clientX, clientY);
    if (!at) return;
    try {
      const hit = await renderEngine.pick(at.x, at.y);
      this.surface.dataset.picked = hit ? String(hit.node.handle) : '';
      this.dispatchEvent(new CustomEvent('pick', { detail: { at, hit } }));
      if (hit) this.selection.select(hit.node, { source: 'pick' });
      else this.selection.clear();
    } catch (err) {
      toast(`Pick failed: ${err.message}`, 'error');
    }
  }
}
