// Turns raw pixels into an ImageBitmap off the main thread: 8-bit RGBA as it came, float RGBA
// tone mapped first (a 4K float frame is over 8 million pixels of arithmetic, far too long for
// the page's thread). The pixel buffer comes in and goes back transferred, never copied, so
// the page can keep float pixels for redrawing at another exposure.

import { tonemap } from './frame.js';

self.addEventListener('message', async (event) => {
  const { id, kind, buffer, byteOffset, length, width, height, exposure, gamma } = event.data;
  try {
    const rgba = kind === 'float'
      ? tonemap(new Float32Array(buffer, byteOffset, length), exposure, gamma)
      : new Uint8ClampedArray(buffer, byteOffset, length);
    const bitmap = await createImageBitmap(new ImageData(rgba, width, height));
    self.postMessage({ id, bitmap, buffer }, [bitmap, buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err?.message || err), buffer }, [buffer]);
  }
});
