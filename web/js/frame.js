// Frame formats: the 80-byte header of /render/ws binary messages (56 and 48 bytes from older
// gateways), the original proxy's SSE image JSON, and turning either into something a canvas
// can draw. A frame may be a view of the render (scaled down, or a crop of it): `region` says
// which part of the full frame the image shows, in full-frame pixels.

export const HEADER_MAGIC = 'OWRF';
export const MIN_HEADER_BYTES = 48;
/** Headers this long carry the upstream's change level at offset 48 (older gateways: 48 bytes). */
const CHANGE_LEVEL_HEADER_BYTES = 56;
/** Headers this long say which region of the full frame the image shows (older: the whole). */
export const VIEW_HEADER_BYTES = 80;
/** Guard against absurd sizes in a corrupt header (16k x 16k is far beyond any render). */
const MAX_DIMENSION = 16384;

const ENCODINGS = ['raw', 'png', 'jpeg'];

/** A problem with frame data from the server; the transport reports it and keeps going. */
export class FrameError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * Decodes one binary WebSocket message into a frame:
 * `{seq, width, height, spp, renderTime, sps, gatewayTimeMs, hdr, changeLevel, region,
 * fullWidth, fullHeight, encoding, payload}` (changeLevel null from a gateway whose header
 * lacks it; region `{x, y, width, height}` and the full size describe the whole image when the
 * header is shorter than 80 bytes), where payload is `{kind: 'rgba', data}` or
 * `{kind: 'blob', blob}`.
 */
export function decodeBinaryFrame(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < MIN_HEADER_BYTES) {
    throw new FrameError(`frame message too short (${buffer?.byteLength ?? 0} bytes)`);
  }
  const view = new DataView(buffer);
  const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
  if (magic !== HEADER_MAGIC) throw new FrameError(`bad frame magic ${JSON.stringify(magic)}`);
  const version = view.getUint8(4);
  if (version !== 1) throw new FrameError(`unsupported frame version ${version}`);
  const encoding = ENCODINGS[view.getUint8(5)];
  if (!encoding) throw new FrameError(`unknown frame encoding ${view.getUint8(5)}`);
  const headerLength = view.getUint16(6, true);
  if (headerLength < MIN_HEADER_BYTES || headerLength > buffer.byteLength) {
    throw new FrameError(`bad frame header length ${headerLength}`);
  }
  const seq = view.getBigUint64(8, true);
  const width = view.getUint32(16, true);
  const height = view.getUint32(20, true);
  checkSize(width, height);
  const frame = {
    seq: Number(seq),
    width,
    height,
    spp: view.getFloat32(24, true),
    renderTime: view.getFloat32(28, true),
    gatewayTimeMs: Number(view.getBigUint64(32, true)) / 1000,
    sps: view.getFloat32(40, true),
    hdr: (view.getUint32(44, true) & 1) === 1,
    changeLevel: headerLength >= CHANGE_LEVEL_HEADER_BYTES ? Number(view.getBigUint64(48, true)) : null,
    ...(headerLength >= VIEW_HEADER_BYTES
      ? checkedView({
        x: view.getUint32(56, true),
        y: view.getUint32(60, true),
        width: view.getUint32(64, true),
        height: view.getUint32(68, true),
      }, view.getUint32(72, true), view.getUint32(76, true))
      : wholeFrame(width, height)),
    encoding,
    payload: null,
  };
  if (encoding === 'raw') {
    const expected = width * height * 4;
    if (buffer.byteLength - headerLength < expected) {
      throw new FrameError(`raw frame ${width}x${height} needs ${expected} bytes, got ${buffer.byteLength - headerLength}`);
    }
    frame.payload = { kind: 'rgba', data: new Uint8ClampedArray(buffer, headerLength, expected) };
  } else {
    const type = encoding === 'png' ? 'image/png' : 'image/jpeg';
    frame.payload = { kind: 'blob', blob: new Blob([new Uint8Array(buffer, headerLength)], { type }) };
  }
  return frame;
}

function checkSize(width, height, what = 'frame size') {
  if (!(width > 0 && height > 0 && width <= MAX_DIMENSION && height <= MAX_DIMENSION)) {
    throw new FrameError(`bad ${what} ${width}x${height}`);
  }
}

/** The view fields of a frame whose image is the full frame (older gateways, SSE). */
export function wholeFrame(width, height) {
  return { region: { x: 0, y: 0, width, height }, fullWidth: width, fullHeight: height };
}

/** The view fields of a frame after checking the region lies inside the full frame. */
function checkedView(region, fullWidth, fullHeight) {
  checkSize(fullWidth, fullHeight, 'full frame size');
  if (!(region.width > 0 && region.height > 0
    && region.x + region.width <= fullWidth && region.y + region.height <= fullHeight)) {
    throw new FrameError(`frame region ${region.x},${region.y},${region.width},${region.height} is not inside the ${fullWidth}x${fullHeight} frame`);
  }
  return { region, fullWidth, fullHeight };
}

/**
 * The view fields of an HTTP frame answer from its `X-Frame-Region` ("x,y,w,h") and
 * `X-Frame-Full-Size` ("WxH") headers; the whole image when the gateway sends neither.
 */
export function viewFromHeaders(imageWidth, imageHeight, regionHeader, fullSizeHeader) {
  if (!regionHeader && !fullSizeHeader) return wholeFrame(imageWidth, imageHeight);
  const region = /^(\d+),(\d+),(\d+),(\d+)$/.exec(regionHeader?.trim() ?? '');
  const full = /^(\d+)x(\d+)$/.exec(fullSizeHeader?.trim() ?? '');
  if (!region) throw new FrameError(`bad X-Frame-Region ${JSON.stringify(regionHeader)} (expected x,y,w,h)`);
  if (!full) throw new FrameError(`bad X-Frame-Full-Size ${JSON.stringify(fullSizeHeader)} (expected WxH)`);
  const [x, y, width, height] = region.slice(1).map(Number);
  return checkedView({ x, y, width, height }, Number(full[1]), Number(full[2]));
}

/**
 * A point on a frame's image (image pixels, fractional) as a point of the full render, in
 * full-frame pixels: `region.x + imageX * region.width / image width` (the same for y).
 */
export function imageToFrame(frame, imageX, imageY) {
  return {
    x: frame.region.x + (imageX * frame.region.width) / frame.width,
    y: frame.region.y + (imageY * frame.region.height) / frame.height,
  };
}

/** Base64 to bytes, using the native decoder where the browser has one. */
export function base64ToBytes(text) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// ImageType values of the LiveLink wire interface.
const LDR_RGBA = 0;
const LDR_MONO = 1;
const HDR_RGBA = 2;

/**
 * Decodes a `newImage` event of GET /render/stream (original proxy shape) into a frame.
 * 8-bit RGBA and mono become RGBA; float RGBA is kept as floats for client-side tone mapping.
 */
export function decodeSseImage(event, seq) {
  const image = event?.render_images?.data?.[0];
  if (!image) throw new FrameError('newImage event without render_images.data[0]');
  const width = Number(image.size?.x) || 0;
  const height = Number(image.size?.y) || 0;
  checkSize(width, height);
  const data = image.buffer?.data;
  if (typeof data !== 'string') throw new FrameError('newImage event without a base64 buffer');
  const bytes = base64ToBytes(data);
  const type = Number(image.type ?? 0);
  const frame = {
    seq,
    width,
    height,
    spp: Number(image.tonemappedSamplesPerPixel) || 0,
    renderTime: Number(image.renderTime) || 0,
    sps: Number(image.samplesPerSecond) || 0,
    gatewayTimeMs: Number.isFinite(Number(event.timestamp)) ? Number(event.timestamp) * 1000 : null,
    hdr: type === HDR_RGBA,
    // The original proxy's stream always carries the full frame.
    ...wholeFrame(width, height),
    encoding: 'sse',
    payload: null,
  };
  if (type === LDR_RGBA) {
    frame.payload = { kind: 'rgba', data: packRows(bytes, width, height, 4) };
  } else if (type === LDR_MONO) {
    frame.payload = { kind: 'rgba', data: monoToRgba(packRows(bytes, width, height, 1), width, height) };
  } else if (type === HDR_RGBA) {
    const packed = packRows(bytes, width, height, 16);
    frame.payload = { kind: 'float', data: new Float32Array(packed.buffer, packed.byteOffset, width * height * 4) };
  } else {
    throw new FrameError(`image type ${type} is not supported by this viewer`);
  }
  return frame;
}

/**
 * Removes row padding. The row stride is derived from the buffer length because servers
 * disagree on whether `pitch` counts bytes or pixels.
 */
function packRows(bytes, width, height, bytesPerPixel) {
  const rowBytes = width * bytesPerPixel;
  const stride = Math.floor(bytes.length / height);
  if (stride < rowBytes) {
    throw new FrameError(`image buffer too small: ${bytes.length} bytes for ${width}x${height}`);
  }
  if (stride === rowBytes) {
    // Copy when needed so that float views are 4-byte aligned.
    const exact = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return new Uint8ClampedArray(exact.buffer, exact.byteOffset, rowBytes * height);
  }
  const out = new Uint8ClampedArray(rowBytes * height);
  for (let y = 0; y < height; y += 1) out.set(bytes.subarray(y * stride, y * stride + rowBytes), y * rowBytes);
  return out;
}

function monoToRgba(mono, width, height) {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < mono.length; i += 1, j += 4) {
    out[j] = mono[i];
    out[j + 1] = mono[i];
    out[j + 2] = mono[i];
    out[j + 3] = 255;
  }
  return out;
}

const LUT_SIZE = 4096;
let srgbLut = null;

/** sRGB transfer curve over [0, 1], tabulated once. */
function srgbTable() {
  if (srgbLut) return srgbLut;
  srgbLut = new Uint8ClampedArray(LUT_SIZE + 1);
  for (let i = 0; i <= LUT_SIZE; i += 1) {
    const v = i / LUT_SIZE;
    srgbLut[i] = 255 * (v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055) + 0.5;
  }
  return srgbLut;
}

/**
 * Tone maps linear float RGBA to 8-bit RGBA the way the gateway does for the WebSocket:
 * `linear * 2^exposure`, raised to `2.2 / gamma`, clamped to [0, 1], then the sRGB curve.
 */
export function tonemap(floats, exposureEv = 0, gamma = 2.2) {
  const scale = 2 ** exposureEv;
  const power = 2.2 / gamma;
  const lut = srgbTable();
  const channel = (v) => {
    const x = Math.min(1, Math.max(0, (v * scale) ** power)) || 0;
    return lut[Math.round(x * LUT_SIZE)];
  };
  const out = new Uint8ClampedArray(floats.length);
  for (let i = 0; i < floats.length; i += 4) {
    out[i] = channel(floats[i]);
    out[i + 1] = channel(floats[i + 1]);
    out[i + 2] = channel(floats[i + 2]);
    out[i + 3] = 255 * Math.min(1, Math.max(0, floats[i + 3]));
  }
  return out;
}
