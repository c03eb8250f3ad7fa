// Undo and redo of scene edits. An entry knows how to apply its old and its new state; a
// slider drag is one entry however many values it sent on the way.

import { toast } from './dom.js';

const MAX_ENTRIES = 200;

export class EditHistory extends EventTarget {
  constructor() {
    super();
    this.done = [];
    this.undone = [];
    /** Undo or redo in progress: a second press waits for it rather than racing it. */
    this.busy = null;
  }

  /** Records an edit that has been applied: `{label, undo: async fn, redo: async fn}`. */
  push(entry) {
    this.done.push(entry);
    if (this.done.length > MAX_ENTRIES) this.done.shift();
    this.undone.length = 0;
    this.changed();
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  undo() {
    return this.step(this.done, this.undone, 'undo', 'Undo');
  }

  redo() {
    return this.step(this.undone, this.done, 'redo', 'Redo');
  }

  async step(from, to, action, word) {
    if (this.busy) await this.busy.catch(() => null);
    const entry = from.pop();
    if (!entry) return false;
    this.busy = (async () => entry[action]())();
    try {
      await this.busy;
      to.push(entry);
      toast(`${word}: ${entry.label}`, 'ok', 1500);
      return true;
    } catch (err) {
      // The scene moved on (the node is gone, a project was loaded): this entry cannot be
      // applied any more, so it is dropped rather than blocking the rest of the history.
      toast(`${word} of "${entry.label}" failed: ${err.message}`, 'error');
      return false;
    } finally {
      this.busy = null;
      this.changed();
    }
  }

  /** Forgets everything (a new project: old handles mean nothing). */
  clear() {
    this.done.length = 0;
    this.undone.length = 0;
    this.changed();
  }

  changed() {
    this.dispatchEvent(new CustomEvent('change', { detail: { canUndo: this.canUndo, canRedo: this.canRedo } }));
  }
}
