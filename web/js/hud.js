// The heads-up display: frame rate, samples, render time, upstream-to-browser latency, and a
// small plot of frame rate and latency over the last minute.

import { compact } from './dom.js';

const FPS_WINDOW_MS = 2000;
const PLOT_STEP_MS = 500;
const PLOT_POINTS = 120; // one minute at two points per second
const MAX_FRAME_TIMES = 512;

export class Hud {
  /** @param {Record<string, HTMLElement>} fields  mode, fps, spp, sps, time, latency, size; plot canvas */
  constructor(fields, plot) {
    this.fields = fields;
    this.plot = plot;
    this.plotCtx = plot.getContext('2d');
    this.frameTimes = [];
    this.latencies = [];
    this.fpsSeries = [];
    this.latencySeries = [];
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
    this.fields.size.textContent = `${frame.width}×${frame.height}${frame.hdr ? ' HDR' : ''}`;
    if (Number.isFinite(frame.gatewayTimeMs) && frame.gatewayTimeMs > 0) {
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
    this.fpsSeries.push(fps);
    this.latencySeries.push(latency);
    if (this.fpsSeries.length > PLOT_POINTS) this.fpsSeries.shift();
    if (this.latencySeries.length > PLOT_POINTS) this.latencySeries.shift();
    if (!document.hidden) this.drawPlot();
  }

  drawPlot() {
    const { plotCtx: ctx, plot } = this;
    const { width, height } = plot;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = 'rgba(255,255,255,0.04)';
    ctx.fillRect(0, 0, width, height);
    this.drawSeries(this.fpsSeries, { color: '#4fc3a1', unit: 'fps', right: false });
    this.drawSeries(this.latencySeries, { color: '#f2a33a', unit: 'ms', right: true });
  }

  drawSeries(series, { color, unit, right }) {
    const { width, height } = this.plot;
    const finite = series.filter(Number.isFinite);
    if (finite.length < 2) return;
    const max = Math.max(1, ...finite) * 1.15;
    const step = width / (PLOT_POINTS - 1);
    const offset = PLOT_POINTS - series.length;
    const ctx = this.plotCtx;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    series.forEach((value, i) => {
      if (!Number.isFinite(value)) {
        drawing = false;
        return;
      }
      const x = (offset + i) * step;
      const y = height - 2 - (value / max) * (height - 4);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.font = '10px system-ui, sans-serif';
    // The scale's top value, so the plot reads without axes.
    const label = `${max.toFixed(0)} ${unit}`;
    ctx.fillText(label, right ? width - 3 - ctx.measureText(label).width : 3, 11);
  }
}
