// Decode-and-draw time per frame in headless Chromium, for frames at the size a laptop viewer
// displays (1440×810) and at 4K (3840×2160), and JPEG against WebP and AVIF of the same
// picture at about the same size, to answer issue 17's "WebP or AVIF only if a browser
// decodes it faster for the same quality" with a measurement.
//
// The picture is a real render: `octaneweb demo --width 3840 --height 2160` (reference render
// server), rendered to --spp samples per pixel and paused, so every encoding is of one frame.
// The 4K JPEG is the gateway's (`GET /render/frame.jpg?quality=80`); the 1440×810 one too when
// the gateway serves views (`?width=1440&height=810`), otherwise the page scales the lossless
// PNG down (high-quality smoothing) and Chromium encodes it at JPEG quality 0.8, as the
// figures say. WebP is Chromium's own encoder (`convertToBlob('image/webp', q)`), AVIF is
// `avifenc` (libavif-bin; left out when it is missing). Each comes twice: at the quality
// whose file is about as large as the JPEG, and at the lowest quality whose PSNR against the
// lossless frame reaches the JPEG's (the same quality, as far as PSNR says).
//
// A frame is drawn the way the viewport draws it: `createImageBitmap(blob)` (decoded off the
// main thread), `drawImage` into a canvas of the image's size, the bitmap closed. The canvas
// records draws and rasterizes them later, so a one-pixel `getImageData` makes the draw happen
// inside the timing. Each measured frame is decoded from a fresh Blob, one per display frame.
//
//   node benches/browser/decode-draw.mjs [--rounds 3] [--frames 120] [--spp 16]
//     [--bin target/release/octaneweb] [--json out.json]
//
// It is a benchmark, not a test: it prints figures and never fails on a slow result.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { callJson, launchBrowser, openPage, startDemo } from '../../tests/browser/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    frames: { type: 'string', default: '120' },
    spp: { type: 'string', default: '16' },
    bin: { type: 'string' },
    json: { type: 'string' },
  },
});
const ROUNDS = Number(opts.rounds);
const FRAMES = Number(opts.frames);
const SPP = Number(opts.spp);
if (!(ROUNDS >= 1 && FRAMES >= 1 && SPP >= 1)) throw new Error('--rounds, --frames and --spp take positive numbers');
if (opts.bin) process.env.OCTANEWEB_BIN = path.resolve(opts.bin);

const FULL = [3840, 2160];
const SMALL = [1440, 810];
const JPEG_QUALITY = 80;

function log(message) {
  process.stderr.write(`${message}\n`);
}

async function getFrame(base, pathAndQuery) {
  const response = await fetch(new URL(pathAndQuery, base));
  if (!response.ok) throw new Error(`${pathAndQuery}: HTTP ${response.status} ${await response.text()}`);
  return {
    bytes: Buffer.from(await response.arrayBuffer()),
    seq: response.headers.get('x-frame-seq'),
    width: Number(response.headers.get('x-frame-width')),
    height: Number(response.headers.get('x-frame-height')),
  };
}

/** Waits for the render to reach `spp` samples per pixel, pauses it and returns the frame's seq once it stays. */
async function renderAndPause(base) {
  const started = Date.now();
  for (;;) {
    const status = await (await fetch(new URL('render/callback-status', base))).json();
    const frame = status.status?.latest_frame;
    if (frame && frame.samples_per_pixel >= SPP) break;
    if (Date.now() - started > 600000) throw new Error(`no frame with ${SPP} spp within 10 minutes: ${JSON.stringify(frame)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await callJson(base, 'ApiRenderEngine', 'pauseRendering');
  // A frame rendered before the pause may still be on its way: wait until the newest stays.
  let seq = null;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const status = await (await fetch(new URL('render/callback-status', base))).json();
    const now = status.status.latest_frame.seq;
    if (now === seq) return status.status.latest_frame;
    seq = now;
  }
}

/** An AVIF encoder for one PNG (`encode(quantizer)` → bytes), or null without avifenc. */
function avifEncoder(png, dir, name) {
  if (spawnSync('avifenc', ['--version']).error) return null;
  const input = path.join(dir, `${name}.png`);
  writeFileSync(input, png);
  return (q) => {
    const output = path.join(dir, `${name}-${q}.avif`);
    const run = spawnSync('avifenc', ['-j', '2', '-s', '8', '--min', String(q), '--max', String(q), '-y', '420', input, output]);
    if (run.status !== 0) throw new Error(`avifenc failed: ${run.stderr}`);
    return readFileSync(output);
  };
}

/**
 * Bisects an encoder's quality knob (`lo..hi`, whole numbers when `integer`) for the file
 * closest to a goal: `measure(setting)` → `{value}`, a value that grows with the setting;
 * resolves to the attempt closest to `goal` (with `atLeast`, the closest not below it).
 */
async function bisect({ lo, hi, steps, integer }, measure, goal, atLeast = false) {
  let best = null;
  for (let i = 0; i < steps && lo <= hi; i += 1) {
    const setting = integer ? Math.round((lo + hi) / 2) : (lo + hi) / 2;
    const attempt = { setting, ...(await measure(setting)) };
    const fits = !atLeast || attempt.value >= goal;
    if (fits && (!best || Math.abs(attempt.value - goal) < Math.abs(best.value - goal))) best = attempt;
    if (attempt.value > goal) hi = integer ? setting - 1 : setting;
    else lo = integer ? setting + 1 : setting;
  }
  return best;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

const demo = await startDemo({ size: FULL });
const browser = await launchBrowser();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'decode-draw-'));
try {
  log(`rendering ${FULL.join('x')} to ${SPP} spp ...`);
  const frameInfo = await renderAndPause(demo.url);
  // The three answers must be of one frame; a pass finishing after the pause makes another.
  let png;
  let jpeg4k;
  let jpegSmallServer;
  for (let attempt = 1; ; attempt += 1) {
    png = await getFrame(demo.url, 'render/frame.png');
    jpeg4k = await getFrame(demo.url, `render/frame.jpg?quality=${JPEG_QUALITY}`);
    jpegSmallServer = await getFrame(demo.url, `render/frame.jpg?quality=${JPEG_QUALITY}&width=${SMALL[0]}&height=${SMALL[1]}`);
    if (new Set([png.seq, jpeg4k.seq, jpegSmallServer.seq]).size === 1) break;
    if (attempt === 10) throw new Error(`the frame keeps changing while paused: ${png.seq}, ${jpeg4k.seq}, ${jpegSmallServer.seq}`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  const serverScales = jpegSmallServer.width === SMALL[0] && jpegSmallServer.height === SMALL[1];
  log(`frame ${png.seq} at ${frameInfo.samples_per_pixel} spp; the gateway ${serverScales ? 'scales' : 'does not scale (the page will)'} to ${SMALL.join('x')}`);

  const page = await openPage(browser, { viewport: { width: 1440, height: 900 } });
  await page.setContent('<!doctype html><body style="margin:0;background:#000"><canvas id="c" style="width:1280px;height:720px;object-fit:contain"></canvas>');
  const b64 = (buffer) => buffer.toString('base64');

  // The lossless sources of both sizes and their JPEGs, in the page; a PSNR helper.
  const smallPngB64 = await page.evaluate(async ({ pngB64, jpeg4kB64, jpegSmallB64, small, quality }) => {
    const bytesOf = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const source = await createImageBitmap(new Blob([bytesOf(pngB64)], { type: 'image/png' }));
    const smallCanvas = new OffscreenCanvas(small[0], small[1]);
    const sctx = smallCanvas.getContext('2d');
    sctx.imageSmoothingQuality = 'high';
    sctx.drawImage(source, 0, 0, small[0], small[1]);
    const smallPng = new Uint8Array(await (await smallCanvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
    const jpegSmall = jpegSmallB64
      ? bytesOf(jpegSmallB64)
      : new Uint8Array(await (await smallCanvas.convertToBlob({ type: 'image/jpeg', quality: quality / 100 })).arrayBuffer());
    const fullCanvas = new OffscreenCanvas(source.width, source.height);
    fullCanvas.getContext('2d').drawImage(source, 0, 0);
    const pixels = (image, w, h) => {
      const canvas = new OffscreenCanvas(w, h);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(image, 0, 0);
      return ctx.getImageData(0, 0, w, h).data;
    };
    window.bench = {
      sizes: {
        full: { source: fullCanvas, reference: pixels(fullCanvas, fullCanvas.width, fullCanvas.height), files: { jpeg: { type: 'image/jpeg', bytes: bytesOf(jpeg4kB64), q: quality } } },
        small: { source: smallCanvas, reference: pixels(smallCanvas, small[0], small[1]), files: { jpeg: { type: 'image/jpeg', bytes: jpegSmall, q: quality } } },
      },
      /** PSNR (RGB) of an encoded picture against the lossless source of its size. */
      async psnr(size, bytes, type) {
        const { source, reference } = window.bench.sizes[size];
        const bitmap = await createImageBitmap(new Blob([bytes], { type }));
        const decoded = pixels(bitmap, source.width, source.height);
        bitmap.close();
        let sum = 0;
        for (let i = 0; i < reference.length; i += 4) {
          for (let c = 0; c < 3; c += 1) {
            const d = reference[i + c] - decoded[i + c];
            sum += d * d;
          }
        }
        return 10 * Math.log10((255 * 255) / (sum / ((reference.length / 4) * 3)));
      },
      async webp(size, q) {
        const bytes = new Uint8Array(await (await window.bench.sizes[size].source.convertToBlob({ type: 'image/webp', quality: q })).arrayBuffer());
        return { bytes, psnr: await window.bench.psnr(size, bytes, 'image/webp') };
      },
    };
    let text = '';
    for (const byte of smallPng) text += String.fromCharCode(byte);
    return btoa(text);
  }, { pngB64: b64(png.bytes), jpeg4kB64: b64(jpeg4k.bytes), jpegSmallB64: serverScales ? b64(jpegSmallServer.bytes) : null, small: SMALL, quality: JPEG_QUALITY });

  const pngs = { full: png.bytes, small: Buffer.from(smallPngB64, 'base64') };
  let avifDecodes = null;
  for (const size of ['small', 'full']) {
    const jpeg = await page.evaluate(async (s) => {
      const file = window.bench.sizes[s].files.jpeg;
      file.psnr = await window.bench.psnr(s, file.bytes, file.type);
      return { bytes: file.bytes.length, psnr: file.psnr };
    }, size);
    log(`${size}: JPEG ${jpeg.bytes} bytes, ${jpeg.psnr.toFixed(2)} dB; searching WebP and AVIF qualities`);
    // WebP: quality 0..1 in Chromium's encoder.
    const webpAt = (q) => page.evaluate(async ({ s, q }) => {
      const { bytes, psnr } = await window.bench.webp(s, q);
      return { bytes: bytes.length, psnr };
    }, { s: size, q });
    const webpSize = await bisect({ lo: 0, hi: 1, steps: 8 }, async (q) => ({ value: (await webpAt(q)).bytes }), jpeg.bytes);
    const webpPsnr = await bisect({ lo: 0, hi: 1, steps: 8 }, async (q) => ({ value: (await webpAt(q)).psnr }), jpeg.psnr, true);
    for (const [name, found] of [['webp', webpSize], ['webp=psnr', webpPsnr]]) {
      if (!found) continue;
      await page.evaluate(async ({ s, name, q }) => {
        const { bytes, psnr } = await window.bench.webp(s, q);
        window.bench.sizes[s].files[name] = { type: 'image/webp', bytes, q, psnr };
      }, { s: size, name, q: found.setting });
    }
    // AVIF: quantizer 63 (smallest) .. 0 (best); bisect on 63 - quantizer so value grows with it.
    const encode = avifEncoder(pngs[size], tmp, size);
    if (!encode) continue;
    if (avifDecodes === null) {
      avifDecodes = await page.evaluate(async (b) => {
        try {
          const bitmap = await createImageBitmap(new Blob([Uint8Array.from(atob(b), (c) => c.charCodeAt(0))], { type: 'image/avif' }));
          bitmap.close();
          return true;
        } catch {
          return false;
        }
      }, b64(encode(40)));
      if (!avifDecodes) log('Chromium does not decode the AVIF: left out');
    }
    if (!avifDecodes) continue;
    const avifAt = async (level) => {
      const bytes = encode(63 - level);
      const psnr = await page.evaluate(async ({ s, b }) => window.bench.psnr(s, Uint8Array.from(atob(b), (c) => c.charCodeAt(0)), 'image/avif'), { s: size, b: b64(bytes) });
      return { bytes, psnr };
    };
    const avifSize = await bisect({ lo: 0, hi: 63, steps: 7, integer: true }, async (level) => ({ value: (await avifAt(level)).bytes.length }), jpeg.bytes);
    const avifPsnr = await bisect({ lo: 0, hi: 63, steps: 7, integer: true }, async (level) => ({ value: (await avifAt(level)).psnr }), jpeg.psnr, true);
    for (const [name, found] of [['avif', avifSize], ['avif=psnr', avifPsnr]]) {
      if (!found) continue;
      const { bytes, psnr } = await avifAt(found.setting);
      await page.evaluate(({ s, name, b, q, psnr }) => {
        window.bench.sizes[s].files[name] = { type: 'image/avif', bytes: Uint8Array.from(atob(b), (c) => c.charCodeAt(0)), q, psnr };
      }, { s: size, name, b: b64(bytes), q: 63 - found.setting, psnr });
    }
  }
  if (avifDecodes === null) log('avifenc not found (apt-get install libavif-bin): AVIF left out');
  const quality = await page.evaluate(() => {
    const out = {};
    for (const [size, { files }] of Object.entries(window.bench.sizes)) {
      for (const [format, file] of Object.entries(files)) out[`${size}/${format}`] = { psnr: file.psnr, bytes: file.bytes.length, q: file.q };
    }
    return out;
  });

  // Decode and draw, rounds interleaved across sizes and formats.
  const samples = {};
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const size of ['small', 'full']) {
      for (const format of await page.evaluate((s) => Object.keys(window.bench.sizes[s].files), size)) {
        log(`round ${round}: ${size} ${format}`);
        const times = await page.evaluate(async ({ size, format, frames }) => {
          const file = window.bench.sizes[size].files[format];
          const canvas = document.getElementById('c');
          const ctx = canvas.getContext('2d', { alpha: false });
          const nextDisplayFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));
          const decode = [];
          const draw = [];
          for (let i = 0; i < frames; i += 1) {
            const blob = new Blob([file.bytes], { type: file.type });
            await nextDisplayFrame();
            const t0 = performance.now();
            const bitmap = await createImageBitmap(blob);
            const t1 = performance.now();
            if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
              canvas.width = bitmap.width;
              canvas.height = bitmap.height;
            }
            ctx.drawImage(bitmap, 0, 0);
            ctx.getImageData(0, 0, 1, 1);
            const t2 = performance.now();
            bitmap.close();
            decode.push(t1 - t0);
            draw.push(t2 - t1);
          }
          return { decode, draw };
        }, { size, format, frames: FRAMES });
        const key = `${size}/${format}`;
        samples[key] ??= { decode: [], draw: [], total: [] };
        samples[key].decode.push(...times.decode);
        samples[key].draw.push(...times.draw);
        samples[key].total.push(...times.decode.map((d, i) => d + times.draw[i]));
      }
    }
  }

  const chromium = browser.version();
  const label = { small: `${SMALL[0]}×${SMALL[1]}`, full: `${FULL[0]}×${FULL[1]}` };
  const source = (key) => {
    const [size, format] = key.split('/');
    const matched = format.endsWith('=psnr') ? ', PSNR of the JPEG' : '';
    if (format === 'jpeg') return size === 'full' || serverScales ? `gateway q${JPEG_QUALITY}` : `Chromium q${JPEG_QUALITY} of the scaled PNG`;
    if (format.startsWith('webp')) return `Chromium q${Math.round(quality[key].q * 100)}${matched}`;
    return `avifenc quantizer ${quality[key].q}${matched}`;
  };
  const fmt = (v) => v.toFixed(1);
  const rows = Object.keys(samples).map((key) => {
    const [size, format] = key.split('/');
    const d = summarize(samples[key].decode);
    const w = summarize(samples[key].draw);
    const t = summarize(samples[key].total);
    return `| ${label[size]} | ${format.replace('=psnr', '').toUpperCase()} (${source(key)}) | ${(quality[key].bytes / 1024).toFixed(0)} KiB | ${quality[key].psnr.toFixed(2)} dB | ${fmt(d.median)} / ${fmt(d.p99)} | ${fmt(w.median)} / ${fmt(w.p99)} | ${fmt(t.median)} / ${fmt(t.p99)} | ${t.n} |`;
  });
  const table = [
    `Frame ${png.seq} of the reference render at ${FULL.join('×')}, ${frameInfo.samples_per_pixel} spp; Chromium ${chromium} headless (--disable-gpu), ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}); ${ROUNDS} rounds × ${FRAMES} frames.`,
    '',
    '| frame | format | size | PSNR | decode ms (median / p99) | draw ms (median / p99) | decode + draw ms (median / p99) | frames |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  process.stdout.write(`${table}\n`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ frame: png.seq, spp: frameInfo.samples_per_pixel, chromium, serverScales, quality, samples }, null, 1));
  await page.context().close();
} finally {
  rmSync(tmp, { recursive: true, force: true });
  await browser.close();
  await demo.stop();
}
