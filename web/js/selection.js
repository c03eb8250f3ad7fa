// The selected scene item, shared by the outliner, the viewport's pick and the inspector:
// whoever selects says so here and everyone else follows.

import { isRef, refKey } from './octane.js';

export class Selection extends EventTarget {
  constructor() {
    super();
    /** `{ref, name, source}` or null; `source` is who selected ('outliner', 'pick', 'inspector', ...). */
    this.current = null;
  }

  /** Selects an item (a reference with handle and type); null or handle 0 clears. */
  select(ref, { name = '', source = '' } = {}) {
    const next = isRef(ref) ? { ref, name, source } : null;
    if (refKey(next?.ref) === refKey(this.current?.ref) && next?.source === this.current?.source) return;
    this.current = next;
    this.dispatchEvent(new CustomEvent('change', { detail: next }));
  }

  clear() {
    this.select(null);
  }

  /** The selected item's handle as a string ('' when nothing is selected). */
  get key() {
    return refKey(this.current?.ref);
  }
}
