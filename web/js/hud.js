// The heads-up display: frame rate, samples, render time, upstream-to-browser latency, and a
// small plot of frame rate and latency over the last minute.

import { compact } from './dom.js';
import { SeriesPlot } from './plot.js';

const FPS_WINDOW_MS = 2000;
const PLOT_STEP_MS = 500;
const PLOT_POINTS = 120; // one minute at two points per second
const MAX_FRAME_TIMES = 512;

export class Hud {
  /** @param {Record<string, HTMLElement>} fields  mode, fps, spp, sps, time, latency, size; plot canvas */
  constructor(fields, plot) {
    this.fields = fields;
    this.plot = new SeriesPlot(plot, [
      { color: '#4fc3a1', unit: 'fps' },
      { color: '#f2a33a', unit: 'ms', right: true },
    ], PLOT_POINTS);
    this.frameTimes = [];
    this.latencies = [];
    /** Listeners of each plotted latency sample (the statistics panel plots it too). */
    this.onLatency = null;
    this.timer = setInterval(() => this.tick(), PLOT_STEP_MS);
  }

  setMode(label) {
    this.fields.mode.textContent = label;
  }

  /** Records a drawn frame (see Viewport's "frame" event). */
  onFrame(frame) {
    const now = performance.now();
    this.frameTimes.push(now);
    if (this.frameTimes.length > MAX_FRAME_TIMES) this.frameTimes.shift();
    this.fields.spp.textContent = Number.isFinite(frame.spp) ? compact(frame.spp, 1) : '–';
    this.fields.sps.textContent = Number.isFinite(frame.sps) ? compact(frame.sps, 1) : '–';
    this.fields.time.textContent = Number.isFinite(frame.renderTime) ? `${frame.renderTime.toFixed(2)} s` : '–';
    // The render's size, and the size sent when the gateway scaled or cropped it for this view.
    const full = `${frame.fullWidth ?? frame.width}×${frame.fullHeight ?? frame.height}`;
    const sent = frame.width !== frame.fullWidth || frame.height !== frame.fullHeight ? ` (sent ${frame.width}×${frame.height})` : '';
    this.fields.size.textContent = `${full}${sent}${frame.hdr ? ' HDR' : ''}`;
    // A frame that reached the gateway before this connection began (the one sent on
    // connect can be minutes old) says nothing about latency.
    const fresh = !(frame.connectedAt > 0) || frame.gatewayTimeMs >= frame.connectedAt;
    if (Number.isFinite(frame.gatewayTimeMs) && frame.gatewayTimeMs > 0 && fresh) {
      // Clocks of the gateway and the browser may differ; a negative value means skew.
      const latency = Math.max(0, frame.drawnAt - frame.gatewayTimeMs);
      this.latencies.push(latency);
      if (this.latencies.length > 32) this.latencies.shift();
      this.fields.latency.textContent = `${latency.toFixed(0)} ms`;
    } else {
      this.fields.latency.textContent = '–';
    }
  }

  fps() {
    const now = performance.now();
    while (this.frameTimes.length && now - this.frameTimes[0] > FPS_WINDOW_MS) this.frameTimes.shift();
    return (this.frameTimes.length * 1000) / FPS_WINDOW_MS;
  }

  tick() {
    const fps = this.fps();
    this.fields.fps.textContent = fps.toFixed(1);
    const latency = this.latencies.length ? this.latencies.reduce((a, b) => a + b, 0) / this.latencies.length : NaN;
    this.latencies.length = 0;
    this.plot.push(fps, latency);
    this.onLatency?.(latency);
  }
}
