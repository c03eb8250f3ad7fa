// A stand-in for the gateway side of issue 17's views on /render/ws, for checking the web
// client against the wire contract (docs/render-stream.md) before a gateway serves views.
// It sits in a Playwright WebSocket route between the page and the real gateway: it asks the
// gateway for raw frames, crops and scales each (nearest pixel; sizes exactly fitted, no
// width ladder) to the view the page asked for, writes the 80-byte header, and answers view
// fields in config messages (acks, refusals naming the field, the newest frame re-sent at
// once) as the contract says. Used by view.test.mjs only when OCTANEWEB_VIEW_EMULATION=1;
// the default run talks to the gateway itself.

const MAX_VIEW_SIZE = 16384;
const VIEW_HEADER_BYTES = 80;
const RAW = 0;

/** The view fields of a config message checked as the contract says: `{view}` or `{error}`. */
export function checkView(message, current, frameSize) {
  const view = { ...current };
  const has = (key) => Object.hasOwn(message, key);
  if (has('width') || has('height')) {
    const { width, height } = message;
    if (!has('width') || !has('height')) return { error: 'width and height go together (both or neither)' };
    if ((width === 0 && height === 0) || (width === null && height === null)) {
      view.width = 0;
      view.height = 0;
    } else {
      for (const [name, value] of [['width', width], ['height', height]]) {
        if (!Number.isInteger(value) || value < 1 || value > MAX_VIEW_SIZE) return { error: `${name} must be an integer in 1..=${MAX_VIEW_SIZE}, or 0 with the other 0 for the full frame` };
      }
      view.width = width;
      view.height = height;
    }
  }
  if (has('crop')) {
    const { crop } = message;
    if (crop === null) {
      view.crop = null;
    } else {
      if (!Array.isArray(crop) || crop.length !== 4 || !crop.every(Number.isInteger)) return { error: 'crop must be [x, y, w, h] in whole pixels, or null' };
      const [x, y, w, h] = crop;
      if (x < 0 || y < 0 || w < 1 || h < 1) return { error: `crop ${crop} needs x, y >= 0 and w, h >= 1` };
      if (frameSize && (x + w > frameSize.width || y + h > frameSize.height)) return { error: `crop ${crop} reaches outside the ${frameSize.width}x${frameSize.height} frame` };
      view.crop = [x, y, w, h];
    }
  }
  return { view };
}

/** A raw frame message (any header length) cut and scaled to `view`, with an 80-byte header. */
export function viewOf(message, view) {
  const source = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const headerLength = source.getUint16(6, true);
  const fullWidth = source.getUint32(16, true);
  const fullHeight = source.getUint32(20, true);
  const [rx, ry, rw, rh] = view.crop ?? [0, 0, fullWidth, fullHeight];
  let width = rw;
  let height = rh;
  if (view.width > 0 && (rw > view.width || rh > view.height)) {
    const scale = Math.min(view.width / rw, view.height / rh);
    width = Math.max(1, Math.round(rw * scale));
    height = Math.max(1, Math.round(rh * scale));
  }
  const out = Buffer.alloc(VIEW_HEADER_BYTES + width * height * 4);
  message.copy(out, 0, 0, Math.min(headerLength, 56));
  const header = new DataView(out.buffer, out.byteOffset, VIEW_HEADER_BYTES);
  header.setUint16(6, VIEW_HEADER_BYTES, true);
  header.setUint32(16, width, true);
  header.setUint32(20, height, true);
  [rx, ry, rw, rh, fullWidth, fullHeight].forEach((n, i) => header.setUint32(56 + 4 * i, n, true));
  for (let y = 0; y < height; y += 1) {
    const sy = ry + Math.floor(((y + 0.5) * rh) / height);
    for (let x = 0; x < width; x += 1) {
      const sx = rx + Math.floor(((x + 0.5) * rw) / width);
      message.copy(out, VIEW_HEADER_BYTES + (y * width + x) * 4, headerLength + (sy * fullWidth + sx) * 4, headerLength + (sy * fullWidth + sx) * 4 + 4);
    }
  }
  return out;
}

/** Routes the page's /render/ws through the emulation; `record` gets what the page sends. */
export async function emulateViews(page, record) {
  await page.routeWebSocket('**/render/ws', (ws) => {
    const server = ws.connectToServer();
    let view = { width: 0, height: 0, crop: null };
    let newest = null;
    const frameSize = () => newest && { width: newest.readUInt32LE(16), height: newest.readUInt32LE(20) };
    const withView = (json) => JSON.stringify({ ...json, width: view.width, height: view.height, crop: view.crop });
    server.send(JSON.stringify({ type: 'config', encoding: 'raw' }));
    ws.onMessage((message) => {
      if (typeof message !== 'string') {
        server.send(message);
        return;
      }
      const parsed = JSON.parse(message);
      record.sent.push(parsed);
      if (parsed.type !== 'config' || !['width', 'height', 'crop'].some((k) => k in parsed)) {
        server.send(parsed.type === 'config' ? JSON.stringify({ ...parsed, encoding: 'raw' }) : message);
        return;
      }
      const checked = checkView(parsed, view, frameSize());
      if (checked.error) {
        ws.send(JSON.stringify({ type: 'error', message: checked.error }));
        return;
      }
      view = checked.view;
      const { width, height, crop, ...rest } = parsed;
      if (Object.keys(rest).length > 1) server.send(JSON.stringify({ ...rest, encoding: 'raw' }));
      ws.send(withView({ type: 'config' }));
      if (newest) ws.send(viewOf(newest, view));
    });
    server.onMessage((message) => {
      if (typeof message === 'string') {
        const parsed = JSON.parse(message);
        if (parsed.type === 'hello') {
          record.servesViews = true;
          ws.send(withView({ ...parsed, header_bytes: VIEW_HEADER_BYTES }));
        } else if (parsed.type === 'config') {
          ws.send(withView(parsed));
        } else {
          ws.send(message);
        }
        return;
      }
      // Frames sent before the gateway took the raw encoding are left out.
      if (message.readUInt8(5) !== RAW) return;
      newest = message;
      ws.send(viewOf(message, view));
    });
  });
}
