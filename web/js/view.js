// What part of the render, at what size, the viewport asks the gateway for (issue 17's
// view: see docs/render-stream.md). Pure functions, so they can be checked on their own.
//
// A view is `{width, height, crop}`: the display size in device pixels (0 × 0 = the full
// frame's resolution) and a region of the full frame `[x, y, w, h]` in full-frame pixels, or
// null for the whole frame.

/** The gateway refuses display sizes beyond this. */
export const MAX_VIEW_SIZE = 16384;
/**
 * A 1:1 crop is widened to multiples of this many pixels, so a scroll of a few pixels asks
 * for nothing new and viewers scrolled to about the same place share one encoding.
 */
export const CROP_GRID = 64;

export const FULL_VIEW = Object.freeze({ width: 0, height: 0, crop: null });

/**
 * The size a box of `cssWidth` × `cssHeight` CSS pixels covers on a screen with
 * `pixelRatio` device pixels per CSS pixel; null for a box with no area (nothing to ask for).
 */
export function displaySize(cssWidth, cssHeight, pixelRatio) {
  const ratio = pixelRatio > 0 ? pixelRatio : 1;
  const width = Math.min(MAX_VIEW_SIZE, Math.round(cssWidth * ratio));
  const height = Math.min(MAX_VIEW_SIZE, Math.round(cssHeight * ratio));
  return width >= 1 && height >= 1 ? { width, height } : null;
}

/**
 * The region of a frame of `fullWidth` × `fullHeight` pixels that shows through a scrolling
 * box, as `[x, y, w, h]`: `visible` and `image` are client rectangles ({left, top, right,
 * bottom}) of the box's inside and of the whole image laid out in it. Widened to the crop
 * grid and clamped to the frame; null when the whole frame shows (no crop needed) or none.
 */
export function visibleCrop(visible, image, fullWidth, fullHeight) {
  const imageWidth = image.right - image.left;
  const imageHeight = image.bottom - image.top;
  if (!(fullWidth > 0 && fullHeight > 0 && imageWidth > 0 && imageHeight > 0)) return null;
  const sx = fullWidth / imageWidth;
  const sy = fullHeight / imageHeight;
  const snapDown = (v) => Math.max(0, Math.floor(v / CROP_GRID) * CROP_GRID);
  const snapUp = (v, limit) => Math.min(limit, Math.ceil(v / CROP_GRID) * CROP_GRID);
  const x0 = snapDown((Math.max(visible.left, image.left) - image.left) * sx);
  const y0 = snapDown((Math.max(visible.top, image.top) - image.top) * sy);
  const x1 = snapUp((Math.min(visible.right, image.right) - image.left) * sx, fullWidth);
  const y1 = snapUp((Math.min(visible.bottom, image.bottom) - image.top) * sy, fullHeight);
  if (x1 <= x0 || y1 <= y0) return null;
  if (x0 === 0 && y0 === 0 && x1 === fullWidth && y1 === fullHeight) return null;
  return [x0, y0, x1 - x0, y1 - y0];
}

export function sameView(a, b) {
  if (!a || !b) return a === b;
  return a.width === b.width && a.height === b.height && String(a.crop) === String(b.crop);
}

/** The view as the fields of a `/render/ws` config message. */
export function viewMessage(view) {
  return { type: 'config', width: view.width, height: view.height, crop: view.crop ? [...view.crop] : null };
}

/** The view as query parameters of `GET /render/frame.*` (nothing for the full frame). */
export function addViewParams(params, view) {
  if (!view) return;
  if (view.width > 0 && view.height > 0) {
    params.set('width', String(view.width));
    params.set('height', String(view.height));
  }
  if (view.crop) params.set('crop', view.crop.join(','));
}

/** A view for logs and data attributes: `1280x720`, `full`, `full crop=0,0,640,448`. */
export function describeView(view) {
  if (!view) return '';
  const size = view.width > 0 ? `${view.width}x${view.height}` : 'full';
  return view.crop ? `${size} crop=${view.crop.join(',')}` : size;
}
