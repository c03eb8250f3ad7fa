// The project dialog: new, open, save and save as, with paths below the render server's
// project folder and a list of recently used ones. The outliner, inspector and settings
// follow through the server's projectManagerChanged, which every load and reset sends.

import { byId, h, toast } from './dom.js';
import { project } from './octane.js';

export class ProjectDialog extends EventTarget {
  /**
   * @param {object} opts
   * @param {{get: () => string[], remember: (path: string) => void}} opts.recent  stored recent paths
   */
  constructor({ recent }) {
    super();
    this.recent = recent;
    this.dialog = byId('dlg-project');
    this.path = byId('project-path');
    this.currentEl = byId('project-current');
    this.current = '';
    this.busy = false;
    byId('btn-project-open').addEventListener('click', () => this.run('open'));
    byId('btn-project-save-as').addEventListener('click', () => this.run('saveAs'));
    byId('btn-project-save').addEventListener('click', () => this.run('save'));
    byId('btn-project-new').addEventListener('click', () => this.run('new'));
    this.path.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.run('open');
      }
    });
  }

  async open() {
    this.renderRecent();
    this.dialog.showModal();
    await this.readCurrent();
    if (!this.path.value) this.path.value = this.current;
    this.path.focus();
  }

  async readCurrent() {
    try {
      this.current = await project.current();
    } catch {
      this.current = '';
    }
    this.currentEl.textContent = this.current || '(new project, not saved)';
    byId('btn-project-save').disabled = !this.current;
    document.body.dataset.project = this.current;
    return this.current;
  }

  remember(path) {
    this.recent.remember(path);
    this.renderRecent();
  }

  renderRecent() {
    const list = this.recent.get();
    const ul = byId('project-recent');
    ul.replaceChildren(...list.map((path) => h('li', {},
      h('button', { type: 'button', className: 'link', title: `Open ${path}`, onclick: () => { this.path.value = path; this.run('open'); } }, path))));
    if (!list.length) ul.append(h('li', { className: 'muted' }, 'Nothing yet'));
  }

  /** Saves to the open project's file without the dialog (Ctrl+S). */
  async quickSave() {
    const current = await this.readCurrent();
    if (!current) {
      await this.open();
      return;
    }
    await this.run('save');
  }

  /** New discards the scene: the first press arms the button, a second one within a few seconds confirms. */
  confirmNew() {
    const button = byId('btn-project-new');
    if (button.dataset.armed) {
      clearTimeout(this.armTimer);
      delete button.dataset.armed;
      button.textContent = 'New';
      return true;
    }
    button.dataset.armed = '1';
    button.textContent = 'Discard changes?';
    this.armTimer = setTimeout(() => {
      delete button.dataset.armed;
      button.textContent = 'New';
    }, 4000);
    return false;
  }

  async run(action) {
    if (this.busy) return;
    const path = this.path.value.trim();
    if ((action === 'open' || action === 'saveAs') && !path) {
      this.path.setAttribute('aria-invalid', 'true');
      this.path.focus();
      toast('Type a project path first', 'info');
      return;
    }
    this.path.removeAttribute('aria-invalid');
    if (action === 'new' && !this.confirmNew()) return;
    this.busy = true;
    this.dialog.dataset.busy = '1';
    try {
      if (action === 'open') {
        await project.load(path);
        this.remember(path);
        toast(`Opened ${path}`, 'ok', 2500);
      } else if (action === 'saveAs') {
        await project.saveAs(path);
        this.remember(path);
        toast(`Saved as ${path}`, 'ok', 2500);
      } else if (action === 'save') {
        await project.save();
        toast(`Saved ${this.current}`, 'ok', 2500);
      } else {
        await project.reset();
        toast('New project', 'ok', 2500);
      }
      await this.readCurrent();
      this.dispatchEvent(new CustomEvent('done', { detail: { action, path: this.current } }));
      if (action !== 'save' && this.dialog.open) this.dialog.close();
    } catch (err) {
      toast(`${{ open: 'Open', saveAs: 'Save as', save: 'Save', new: 'New' }[action]} failed: ${err.message}`, 'error');
      this.dispatchEvent(new CustomEvent('failed', { detail: { action, error: err } }));
    } finally {
      this.busy = false;
      delete this.dialog.dataset.busy;
    }
  }
}
