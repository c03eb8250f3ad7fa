// Render statistics: samples per pixel against the kernel's limit, speed, elapsed and
// estimated time, state, device and memory, read with getRenderStatistics (every second
// while the page is visible, and at once when the server announces new statistics), with
// plots of samples per second and frame latency over the last two minutes.

import { compact, h } from './dom.js';
import { renderEngine, renderStateWord } from './octane.js';
import { SeriesPlot } from './plot.js';

const POLL_MS = 1000;
/** Announcements closer together than this share one read. */
const MIN_GAP_MS = 250;
const PLOT_POINTS = 120;
/** Device, memory and geometry change rarely: read them this often. */
const HARDWARE_EVERY_MS = 10000;

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return hours ? `${hours} h ${String(minutes).padStart(2, '0')} min` : `${minutes} min ${String(rest).padStart(2, '0')} s`;
}

function bytes(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return '–';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/**
 * Seconds left until the sample limit: the server's estimate when it gives one, else
 * pixels × samples still to go / samples per second.
 */
export function remainingSeconds(s) {
  const estimate = Number(s.estimatedRenderTime);
  if (estimate > 0) return Math.max(0, estimate - Number(s.renderTime || 0));
  const spp = Number(s.beautySamplesPerPixel) || 0;
  const max = Number(s.beautyMaxSamplesPerPixel) || 0;
  const sps = Number(s.beautySamplesPerSecond) || 0;
  const pixels = (Number(s.usedSize?.x) || 0) * (Number(s.usedSize?.y) || 0);
  if (!(max > spp) || !(sps > 0) || !pixels) return spp >= max && max > 0 ? 0 : NaN;
  return ((max - spp) * pixels) / sps;
}

export class RenderStats extends EventTarget {
  constructor({ root }) {
    super();
    this.root = root;
    this.statistics = null;
    this.hardware = null;
    this.hardwareAt = -Infinity;
    this.timer = null;
    this.reading = null;
    this.lastRead = 0;
    this.latestLatency = NaN;
    this.build();
    this.plotTimer = setInterval(() => this.plotSample(), 1000);
  }

  build() {
    const field = (key, label) => h('div', {}, h('dt', {}, label), h('dd', { dataset: { field: key } }, '–'));
    this.progress = h('progress', { max: '1', value: '0', 'aria-label': 'Samples per pixel against the maximum' });
    this.progressText = h('span', { className: 'progress-text' }, '–');
    this.fields = h('dl', { className: 'stats-list' },
      field('state', 'State'),
      field('sps', 'Samples/s'),
      field('elapsed', 'Elapsed'),
      field('remaining', 'Remaining'),
      field('size', 'Resolution'),
      field('device', 'Device'),
      field('memory', 'Memory'),
      field('geometry', 'Geometry'));
    const canvas = h('canvas', { width: '360', height: '64', role: 'img', 'aria-label': 'Samples per second (green) and frame latency (amber) over the last two minutes' });
    this.plot = new SeriesPlot(canvas, [
      { color: '#4fc3a1', unit: 'S/s' },
      { color: '#f2a33a', unit: 'ms', right: true },
    ], PLOT_POINTS);
    this.root.replaceChildren(h('div', { className: 'progress-row' }, this.progress, this.progressText), this.fields, canvas);
  }

  start() {
    this.stop();
    const loop = async () => {
      if (!document.hidden) await this.read().catch(() => null);
      this.timer = setTimeout(loop, POLL_MS);
    };
    loop();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** The server announced new statistics (or the scene changed): read them soon. */
  announce() {
    const wait = Math.max(0, this.lastRead + MIN_GAP_MS - performance.now());
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => this.read().catch(() => null), wait);
  }

  /** One frame's latency in milliseconds, for the plot (the HUD decides what counts). */
  recordLatency(ms) {
    if (Number.isFinite(ms)) this.latestLatency = ms;
  }

  async read() {
    if (this.reading) return this.reading;
    this.lastRead = performance.now();
    this.reading = (async () => {
      try {
        const statistics = await renderEngine.statistics({ timeoutMs: 5000 });
        if (performance.now() - this.hardwareAt > HARDWARE_EVERY_MS) {
          this.hardwareAt = performance.now();
          this.hardware = await renderEngine.hardware().catch(() => this.hardware);
        }
        this.statistics = statistics;
        this.root.dataset.state = 'ready';
        this.render();
        this.dispatchEvent(new CustomEvent('state', { detail: { state: renderStateWord(statistics.state), statistics } }));
      } catch (err) {
        this.root.dataset.state = 'error';
        this.dispatchEvent(new CustomEvent('state', { detail: { state: 'unknown', error: err } }));
        throw err;
      } finally {
        this.reading = null;
      }
    })();
    return this.reading;
  }

  set(key, text) {
    const dd = this.fields.querySelector(`[data-field="${key}"]`);
    if (dd) dd.textContent = text;
  }

  render() {
    const s = this.statistics ?? {};
    const spp = Number(s.beautySamplesPerPixel) || 0;
    const max = Number(s.beautyMaxSamplesPerPixel) || 0;
    this.progress.max = String(Math.max(1, max));
    this.progress.value = String(Math.min(spp, Math.max(1, max)));
    const percent = max > 0 ? ` (${((100 * spp) / max).toFixed(max > 1000 ? 2 : 0)} %)` : '';
    this.progressText.textContent = `${spp.toLocaleString()} / ${max ? max.toLocaleString() : '–'} samples/px${percent}`;
    this.root.dataset.spp = String(spp);
    this.root.dataset.maxSpp = String(max);
    this.set('state', renderStateWord(s.state));
    this.set('sps', compact(Number(s.beautySamplesPerSecond), 2));
    this.set('elapsed', duration(Number(s.renderTime)));
    this.set('remaining', duration(remainingSeconds(s)));
    const size = s.usedSize ?? s.setSize;
    const sub = s.subSampleMode && s.subSampleMode !== 'SUBSAMPLEMODE_NONE' ? ` (${String(s.subSampleMode).replace('SUBSAMPLEMODE_', '').toLowerCase()})` : '';
    this.set('size', size ? `${size.x ?? 0}×${size.y ?? 0}${sub}` : '–');
    const hw = this.hardware;
    if (hw) {
      this.set('device', hw.deviceName ? `${hw.deviceName}${hw.deviceCount > 1 ? ` (+${hw.deviceCount - 1})` : ''}` : '–');
      const m = hw.memory;
      this.set('memory', m ? `${bytes(m.usedDeviceMemory)} of ${bytes(m.totalDeviceMemory)}` : '–');
      const g = hw.geometry;
      this.set('geometry', g ? `${Number(g.triCount || 0).toLocaleString()} triangles, ${g.sphereCount || 0} spheres, ${g.instanceCount || 0} instances` : '–');
    }
  }

  plotSample() {
    const sps = Number(this.statistics?.beautySamplesPerSecond);
    this.plot.push(Number.isFinite(sps) ? sps : NaN, this.latestLatency);
    this.latestLatency = NaN;
  }
}
