// Camera input → first frame on the canvas that shows it, measured in headless Chromium
// against the real `octaneweb demo` (reference render server at 1024×512 behind the gateway).
//
// How a frame is known to show an input: every camera update the render server applies
// raises its change level, and the gateway's frame header carries the level of each image.
// The bench only sends input once the page is quiet (no camera call running, the newest level
// unchanged for a while), so nothing but the input can raise the level: the first frame drawn
// with a higher level than the one on screen at the input is rendered from the new camera,
// never a refinement of the old one. For the last step of a drag, the level the scene settles
// at after release is the level of the last camera sent (the newest state always wins), so the
// first frame drawn at that level is the one showing the last step.
//
// Per input it records: the input event's time in the page, the frame's arrival at the gateway
// (header), its arrival in the page (WebSocket message), and the end of its draw on the canvas.
// So the total splits into input → gateway arrival (the camera message through the gateway
// and render server, the sub-sampled render, the callback and grab), gateway arrival → page
// (the gateway's share on the way back: encode, send) and page → canvas (decode, draw).
//
//   node benches/camera-latency/bench.mjs [--rounds 5] [--drags 20] [--wheels 20]
//     [--steps 12] [--camera-rate 30] [--bin target/release/octaneweb]
//     [--baseline-bin another/octaneweb] [--json out.json]
//
// It is a benchmark, not a test: it prints figures and never fails on a slow result.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { launchBrowser, openPage, repoRoot, startDemo } from '../../tests/browser/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    drags: { type: 'string', default: '20' },
    wheels: { type: 'string', default: '20' },
    steps: { type: 'string', default: '12' },
    bin: { type: 'string' },
    json: { type: 'string' },
    width: { type: 'string', default: '1024' },
    height: { type: 'string', default: '512' },
    'camera-rate': { type: 'string' },
    'baseline-bin': { type: 'string' },
  },
});
const ROUNDS = Number(opts.rounds);
const DRAGS = Number(opts.drags);
const WHEELS = Number(opts.wheels);
const STEPS = Number(opts.steps);
/** Quiet this long (no new change level, no camera call) before an input. */
const QUIET_MS = 150;
/** Pointer moves of a drag come this often (a 60 Hz mouse). */
const MOVE_INTERVAL_MS = 16;
const WAIT_TIMEOUT_MS = 10000;

process.env.OCTANEWEB_BIN = opts.bin || process.env.OCTANEWEB_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target'), 'release', 'octaneweb');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

function summary(values) {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  return { n: sorted.length, p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: sorted.at(-1) };
}

const fmt = (v) => (Number.isFinite(v) ? v.toFixed(1) : '–');

/** Installs the recorders in the page: input events on the viewport, every drawn frame. */
async function instrument(page) {
  await page.evaluate(() => {
    const now = () => performance.timeOrigin + performance.now();
    const record = { inputs: [], frames: [] };
    window.__latency = record;
    const viewport = document.getElementById('viewport');
    const onInput = (event) => {
      // Moves without a pressed button do not move the camera.
      if (event.type === 'pointermove' && event.buttons === 0) return;
      record.inputs.push({ type: event.type, t: performance.timeOrigin + event.timeStamp });
    };
    for (const type of ['pointerdown', 'pointermove', 'pointerup', 'wheel']) viewport.addEventListener(type, onInput, { capture: true, passive: true });
    window.octaneweb.viewport.addEventListener('frame', (event) => {
      const f = event.detail;
      record.frames.push({ seq: f.seq, level: f.changeLevel, arrived: f.gatewayTimeMs, received: f.receivedAt, drawn: now(), spp: f.spp, renderTime: f.renderTime });
    });
  });
}

/** Waits until no camera call runs and the newest drawn level has not changed for QUIET_MS. */
async function quiet(page) {
  await page.waitForFunction(
    (quietMs) => {
      const record = window.__latency;
      const viewport = document.getElementById('viewport');
      if (viewport.dataset.cameraBusy === '1' || record.frames.length === 0) return false;
      const state = (window.__quiet ??= { level: -1, since: 0 });
      const level = record.frames.at(-1).level;
      const now = performance.timeOrigin + performance.now();
      if (level !== state.level) Object.assign(state, { level, since: now });
      return now - state.since >= quietMs;
    },
    QUIET_MS,
    { timeout: WAIT_TIMEOUT_MS, polling: 10 },
  );
  // A random phase, so inputs do not lock onto the render loop's cadence.
  await sleep(Math.random() * 50);
  return page.evaluate(() => ({ level: window.__latency.frames.at(-1).level, inputs: window.__latency.inputs.length, frames: window.__latency.frames.length }));
}

/** Waits for a drawn frame (after index `from`) whose level passes `wanted`. */
async function frameWhere(page, from, test) {
  await page.waitForFunction(
    ([start, source]) => {
      const wanted = new Function('f', `return ${source};`);
      return window.__latency.frames.slice(start).some(wanted);
    },
    [from, test],
    { timeout: WAIT_TIMEOUT_MS, polling: 'raf' },
  );
}

function sample(kind, inputTime, frame) {
  return {
    kind,
    total: frame.drawn - inputTime,
    toGateway: frame.arrived - inputTime,
    render: frame.renderTime * 1000,
    gateway: frame.received - frame.arrived,
    browser: frame.drawn - frame.received,
    level: frame.level,
  };
}

async function dragOnce(page, box, direction) {
  const before = await quiet(page);
  const y = box.y + box.height / 2;
  const x0 = box.x + box.width / 2 - (direction * STEPS * 8) / 2;
  await page.mouse.move(x0, y);
  await page.mouse.down();
  for (let i = 1; i <= STEPS; i += 1) {
    await page.mouse.move(x0 + direction * i * 8, y);
    await sleep(MOVE_INTERVAL_MS);
  }
  await page.mouse.up();
  await frameWhere(page, before.frames, `f.level > ${before.level}`);
  const after = await quiet(page);
  const { inputs, frames } = await page.evaluate(([i, f]) => ({ inputs: window.__latency.inputs.slice(i), frames: window.__latency.frames.slice(f) }), [before.inputs, before.frames]);
  const moves = inputs.filter((e) => e.type === 'pointermove');
  const first = moves[0];
  const last = moves.at(-1);
  const firstFrame = frames.find((f) => f.level > before.level && f.drawn >= first.t);
  const lastFrame = frames.find((f) => f.level === after.level && f.drawn >= last.t);
  const during = frames.filter((f) => f.drawn >= first.t && f.drawn <= last.t);
  const levelsDuring = new Set(during.filter((f) => f.level > before.level).map((f) => f.level)).size;
  return {
    first: firstFrame && sample('drag-first', first.t, firstFrame),
    last: lastFrame && sample('drag-last', last.t, lastFrame),
    viewsPerSecond: (levelsDuring * 1000) / Math.max(1, last.t - first.t),
  };
}

async function wheelOnce(page, box, direction) {
  const before = await quiet(page);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, direction * 100);
  await frameWhere(page, before.frames, `f.level > ${before.level}`);
  const { inputs, frames } = await page.evaluate(([i, f]) => ({ inputs: window.__latency.inputs.slice(i), frames: window.__latency.frames.slice(f) }), [before.inputs, before.frames]);
  const wheel = inputs.find((e) => e.type === 'wheel');
  const frame = frames.find((f) => f.level > before.level);
  return wheel && frame && sample('wheel', wheel.t, frame);
}

/** One round against one binary: a fresh demo and page, DRAGS drags and WHEELS wheel notches. */
async function round(browser, bin, size, into) {
  const projectRoot = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-camera-bench-'));
  process.env.OCTANEWEB_BIN = bin;
  const demo = await startDemo({ size, extraArgs: ['--project-root', projectRoot] });
  // --camera-rate: the "Camera updates per second" setting (stored preferences), default 30.
  const initScript = opts['camera-rate'] ? `localStorage.setItem('octaneweb.prefs', ${JSON.stringify(JSON.stringify({ cameraRate: Number(opts['camera-rate']) }))});` : undefined;
  const page = await openPage(browser, { viewport: { width: 1440, height: 900 }, initScript });
  try {
    await page.goto(`${demo.openUrl}${demo.openUrl.includes('?') ? '&' : '?'}transport=ws`);
    await page.waitForFunction(() => document.getElementById('viewport').dataset.camera === 'ready' && Number(document.getElementById('viewport').dataset.frames) > 0, null, { timeout: 30000 });
    await instrument(page);
    const level = await page.evaluate(async () => {
      await new Promise((resolve) => window.octaneweb.viewport.addEventListener('frame', resolve, { once: true }));
      return window.__latency.frames.at(-1).level;
    });
    if (!Number.isFinite(level)) throw new Error(`${bin}: frames carry no change level (a gateway writing the 48-byte header)`);
    const box = await page.locator('#frame-canvas').boundingBox();
    for (let i = 0; i < DRAGS; i += 1) {
      const result = await dragOnce(page, box, i % 2 === 0 ? 1 : -1);
      if (result.first) into.samples.push(result.first);
      if (result.last) into.samples.push(result.last);
      into.viewsPerSecond.push(result.viewsPerSecond);
    }
    for (let i = 0; i < WHEELS; i += 1) {
      const result = await wheelOnce(page, box, i % 2 === 0 ? -1 : 1);
      if (result) into.samples.push(result);
    }
    if (page.problems.length) console.error(`page problems: ${page.problems.join('; ')}`);
  } finally {
    await page.context().close();
    await demo.stop();
    rmSync(projectRoot, { recursive: true, force: true });
  }
}

function report(name, { samples, viewsPerSecond }) {
  const kinds = ['drag-first', 'drag-last', 'wheel', 'all'];
  const parts = ['total', 'toGateway', 'render', 'gateway', 'browser'];
  const table = {};
  for (const kind of kinds) {
    const chosen = kind === 'all' ? samples : samples.filter((s) => s.kind === kind);
    table[kind] = Object.fromEntries(parts.map((part) => [part, summary(chosen.map((s) => s[part]))]));
  }
  console.log(`\n${name}`);
  console.log('| input | n | total p50 | total p99 | input → gateway arrival p50 | of it render p50 | gateway arrival → page p50 / p99 | page → drawn p50 |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const kind of kinds) {
    const t = table[kind];
    console.log(`| ${kind} | ${t.total.n} | ${fmt(t.total.p50)} ms | ${fmt(t.total.p99)} ms | ${fmt(t.toGateway.p50)} ms | ${fmt(t.render.p50)} ms | ${fmt(t.gateway.p50)} / ${fmt(t.gateway.p99)} ms | ${fmt(t.browser.p50)} ms |`);
  }
  const views = summary(viewsPerSecond);
  const blind = viewsPerSecond.filter((v) => v === 0).length;
  console.log(`new views drawn per second while the pointer moved: p50 ${fmt(views.p50)}, fewest ${fmt(Math.min(...viewsPerSecond))}; ${blind} of ${viewsPerSecond.length} drags showed nothing new until the pointer stopped`);
  return { table, viewsPerSecond: views, blindDrags: blind, samples };
}

async function main() {
  const size = [Number(opts.width), Number(opts.height)];
  const bins = [['octaneweb', process.env.OCTANEWEB_BIN]];
  // --baseline-bin: another build measured in the same run, rounds interleaved so both see
  // the same machine load (one demo at a time: two render loops would share the CPU).
  if (opts['baseline-bin']) bins.unshift(['baseline', path.resolve(opts['baseline-bin'])]);
  const results = Object.fromEntries(bins.map(([name]) => [name, { samples: [], viewsPerSecond: [] }]));
  const browser = await launchBrowser();
  try {
    for (let r = 1; r <= ROUNDS; r += 1) {
      for (const [name, bin] of bins) {
        const into = results[name];
        const started = into.samples.length;
        await round(browser, bin, size, into);
        const totals = summary(into.samples.slice(started).map((s) => s.total));
        console.error(`round ${r} ${name}: ${totals.n} inputs, p50 ${fmt(totals.p50)} ms, p99 ${fmt(totals.p99)} ms`);
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`camera input → first frame on the canvas showing it, ${size[0]}x${size[1]}, ${ROUNDS} rounds of ${DRAGS} drags (${STEPS} moves) and ${WHEELS} wheel notches`);
  const out = {};
  for (const [name, bin] of bins) out[name] = report(`${name} (${bin})`, results[name]);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ size, rounds: ROUNDS, ...out }, null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
