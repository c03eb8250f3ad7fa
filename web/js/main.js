// Entry point: builds the modules, wires the controls, settings, shortcuts and recovery.

import { baseUrl, storedServer, storeServer, wsUrl } from './api.js';
import { CameraController } from './camera.js';
import { byId, h, isTyping, toast } from './dom.js';
import { Explorer } from './explorer.js';
import { Hud } from './hud.js';
import { Inspector } from './inspector.js';
import { renderEngine } from './octane.js';
import { Outliner } from './outliner.js';
import { prefs } from './prefs.js';
import { ProjectDialog } from './projects.js';
import { sharedClient } from './rpc.js';
import { Selection } from './selection.js';
import { RenderStats } from './stats.js';
import { ConnectionStatus } from './status.js';
import { ViewportTools } from './tools.js';
import { EditHistory } from './undo.js';
import { Viewport } from './viewport.js';

const query = new URLSearchParams(location.search);
// ?transport= forces the first transport for this page (tests and debugging).
const forcedTransport = ['auto', 'ws', 'sse', 'poll'].includes(query.get('transport')) ? query.get('transport') : null;

const status = new ConnectionStatus({ banner: byId('banner'), indicator: byId('conn-indicator') });
const viewportEl = byId('viewport');
const viewport = new Viewport({
  root: viewportEl,
  canvas: byId('frame-canvas'),
  empty: byId('viewport-empty'),
  modeIndicator: byId('mode-indicator'),
  status,
  preferred: forcedTransport || prefs.get('transport'),
  config: {
    encoding: prefs.get('encoding') ?? undefined,
    quality: prefs.get('quality') ?? undefined,
    maxFps: prefs.get('maxFps'),
    exposure: prefs.get('exposure'),
  },
});
const hud = new Hud({
  mode: byId('hud-mode'),
  fps: byId('hud-fps'),
  spp: byId('hud-spp'),
  sps: byId('hud-sps'),
  time: byId('hud-time'),
  latency: byId('hud-latency'),
  size: byId('hud-size'),
}, byId('hud-plot'));
// One multiplexed /ws socket for streaming calls (camera drags, the explorer's client and
// bidi streams); it opens on first use.
const rpc = sharedClient(wsUrl('ws'));
const camera = new CameraController({ surface: viewportEl, rate: prefs.get('cameraRate'), rpc });
const selection = new Selection();
const history = new EditHistory();
const outliner = new Outliner({ root: byId('outliner'), selection });
const inspector = new Inspector({ root: byId('inspector'), selection, history });
const renderSettings = new Inspector({
  root: byId('render-settings'),
  selection,
  history,
  openLinks: true,
  emptyText: 'The render target is read when this panel opens.',
});
const stats = new RenderStats({ root: byId('stats') });
const tools = new ViewportTools({
  surface: viewportEl,
  canvas: byId('frame-canvas'),
  viewport,
  regionBox: byId('region-box'),
  dragBox: byId('drag-box'),
  selection,
});
const projects = new ProjectDialog({
  recent: { get: () => prefs.get('recentProjects'), remember: (path) => prefs.rememberProject(path) },
});
const explorer = new Explorer(byId('explorer'), { rpc });

// --- viewport, HUD, zoom, save ---
viewport.addEventListener('mode', (event) => {
  hud.setMode(event.detail.label);
  showStale();
});
viewport.addEventListener('frame', (event) => {
  hud.onFrame(event.detail);
  byId('hdr-controls').hidden = !event.detail.hdr;
  // The frame's size or view may have moved the image on screen.
  tools.showRegion();
  showStale();
});
hud.onLatency = (ms) => stats.recordLatency(ms);
viewport.addEventListener('notice', (event) => {
  const message = event.detail;
  if (message.type === 'hello') reflectStreamSettings(message);
  if (message.type === 'statistics') stats.announce();
  if (message.type === 'projectManagerChanged') sceneChanged();
});

/** A project was loaded or reset: every handle may mean something else now. */
function sceneChanged() {
  camera.sceneChanged();
  history.clear();
  selection.clear();
  outliner.load();
  stats.announce();
  readEngineModes();
  if (!byId('panel-render').hidden) loadRenderSettings();
  else renderSettings.showEmpty();
  projects.readCurrent();
}

/** The last frame stays on screen while disconnected, marked as such. */
function showStale() {
  const live = viewport.modeIndicator.dataset.live === '1';
  const connected = status.gateway === 'up' && status.upstream !== 'down';
  const stale = viewport.framesDrawn > 0 && (!live || !connected);
  byId('stale-mark').hidden = !stale;
  viewportEl.classList.toggle('stale', stale);
  viewportEl.dataset.stale = stale ? '1' : '0';
}

function setZoom(zoom) {
  viewport.setZoom(zoom);
  byId('btn-fit').setAttribute('aria-pressed', String(zoom === 'fit'));
  byId('btn-actual').setAttribute('aria-pressed', String(zoom === 'actual'));
  tools.showRegion();
}
byId('btn-fit').addEventListener('click', () => setZoom('fit'));
byId('btn-actual').addEventListener('click', () => setZoom('actual'));
byId('btn-save').addEventListener('click', () => viewport.savePng());
byId('btn-reset-camera').addEventListener('click', () => camera.reset());
byId('mode-indicator').addEventListener('click', () => viewport.start());

// --- selection: outliner, pick and inspector links show the item in the inspector ---
selection.addEventListener('change', (event) => {
  const item = event.detail;
  if (!item) {
    inspector.showEmpty();
    return;
  }
  inspector.show(item.ref);
  // A pick or a followed link from the render settings shows the inspector.
  if (item.source === 'pick' || (item.source === 'inspector' && !byId('panel-render').hidden)) selectTab(byId('tab-scene'));
});

// A rename or delete in the outliner shows in the inspector at once.
outliner.addEventListener('renamed', () => inspector.refresh());
outliner.addEventListener('deleted', (event) => {
  if (selection.key === String(event.detail.ref?.handle ?? '')) selection.clear();
  else inspector.refresh();
});

// --- undo and redo ---
history.addEventListener('change', (event) => {
  byId('btn-undo').disabled = !event.detail.canUndo;
  byId('btn-redo').disabled = !event.detail.canRedo;
});
byId('btn-undo').addEventListener('click', () => history.undo());
byId('btn-redo').addEventListener('click', () => history.redo());

// --- viewport tools: region, clay, sub-sampling ---
const regionButton = byId('btn-region');
tools.addEventListener('regionmode', (event) => regionButton.setAttribute('aria-pressed', String(event.detail)));
tools.addEventListener('region', (event) => {
  byId('btn-region-clear').disabled = !event.detail;
});
regionButton.addEventListener('click', () => tools.setRegionMode(!tools.regionMode));
byId('btn-region-clear').addEventListener('click', () => tools.clearRegion());

const claySelect = byId('sel-clay');
const subSampleSelect = byId('sel-subsample');
/** Reads the region, clay and sub-sampling modes the server has (they outlive this page). */
async function readEngineModes() {
  try {
    const [clay, subSample] = await Promise.all([renderEngine.clayMode(), renderEngine.subSampleMode(), tools.readRegion()]);
    claySelect.value = clay;
    subSampleSelect.value = subSample;
    document.body.dataset.engineModes = 'ready';
  } catch (err) {
    document.body.dataset.engineModes = 'error';
    if (err.unreachable) status.reportUnreachable();
  }
}
async function setMode(select, apply, what) {
  try {
    await apply(select.value);
    stats.announce();
  } catch (err) {
    toast(`Could not set ${what}: ${err.message}`, 'error');
    readEngineModes();
  }
}
claySelect.addEventListener('change', () => setMode(claySelect, renderEngine.setClayMode, 'clay mode'));
subSampleSelect.addEventListener('change', () => setMode(subSampleSelect, renderEngine.setSubSampleMode, 'sub-sampling'));

// --- render engine controls and state ---
/** The server's render state in words ('rendering', 'paused', 'stopped', 'finished', ...). */
let renderState = 'unknown';
const STATE_LABELS = { rendering: 'Rendering', waiting: 'Waiting for data', paused: 'Paused', stopped: 'Stopped', finished: 'Finished', unknown: '…' };
stats.addEventListener('state', (event) => showRenderState(event.detail.state, event.detail.statistics));
function showRenderState(state, statistics) {
  renderState = state;
  document.body.dataset.render = state;
  const badge = byId('render-state');
  badge.dataset.state = state;
  const spp = Number(statistics?.beautySamplesPerPixel);
  const max = Number(statistics?.beautyMaxSamplesPerPixel);
  const progress = (state === 'rendering' || state === 'paused') && max > 0 && Number.isFinite(spp) ? ` · ${spp.toLocaleString()} spp` : '';
  badge.textContent = `${STATE_LABELS[state] ?? state}${progress}`;
  byId('btn-pause').disabled = !(state === 'rendering' || state === 'waiting');
  byId('btn-continue').disabled = state !== 'paused';
}

const RENDER_COMMANDS = {
  pause: [renderEngine.pause, 'Rendering paused'],
  resume: [renderEngine.resume, 'Rendering continues'],
  restart: [renderEngine.restart, 'Rendering restarted'],
  stop: [renderEngine.stop, 'Rendering stopped'],
};
async function renderCommand(name) {
  const [run, label] = RENDER_COMMANDS[name];
  try {
    await run();
    toast(label, 'ok', 1500);
  } catch (err) {
    toast(`${label.split(' ')[1] ?? name} failed: ${err.message}`, 'error');
    if (err.unreachable) status.reportUnreachable();
  }
  // The badge shows what the server says, not what was asked.
  await stats.read().catch(() => null);
}
/** Space: pause while rendering, continue when paused, restart when stopped. */
function toggleRendering() {
  if (renderState === 'paused') return renderCommand('resume');
  if (renderState === 'stopped') return renderCommand('restart');
  if (renderState === 'finished') {
    toast('The render is finished: R restarts it', 'info', 2500);
    return null;
  }
  return renderCommand('pause');
}
byId('btn-pause').addEventListener('click', () => renderCommand('pause'));
byId('btn-continue').addEventListener('click', () => renderCommand('resume'));
byId('btn-restart').addEventListener('click', () => renderCommand('restart'));
byId('btn-stop').addEventListener('click', () => renderCommand('stop'));

// --- render settings: the render target's nodes, edited like any other ---
async function loadRenderSettings() {
  try {
    const target = await renderEngine.renderTargetNode();
    if (!target || String(target.handle) === '0') {
      renderSettings.showEmpty('The render server has no render target.');
      return;
    }
    await renderSettings.show(target);
  } catch (err) {
    renderSettings.showEmpty(`Could not read the render target: ${err.message}`);
  }
}
byId('btn-refresh-settings').addEventListener('click', loadRenderSettings);

// --- projects ---
byId('btn-project').addEventListener('click', () => projects.open());

// --- stream settings: encoding, quality, exposure ---
const encodingSelect = byId('sel-encoding');
const qualityRange = byId('rng-quality');
const exposureRange = byId('rng-exposure');

function showStreamSettings(encoding, quality) {
  if (encoding) encodingSelect.value = encoding;
  if (Number.isFinite(quality)) qualityRange.value = String(quality);
  byId('out-quality').textContent = qualityRange.value;
  qualityRange.disabled = encodingSelect.value !== 'jpeg';
}

/** The server says what it streams; show it unless the user chose otherwise. */
function reflectStreamSettings(hello) {
  showStreamSettings(prefs.get('encoding') ?? hello.encoding, prefs.get('quality') ?? Number(hello.quality));
}

showStreamSettings(prefs.get('encoding'), prefs.get('quality'));
encodingSelect.addEventListener('change', () => {
  const encoding = prefs.set('encoding', encodingSelect.value);
  showStreamSettings();
  viewport.configure({ encoding });
});
qualityRange.addEventListener('input', () => {
  byId('out-quality').textContent = qualityRange.value;
});
qualityRange.addEventListener('change', () => {
  viewport.configure({ quality: prefs.set('quality', Number(qualityRange.value)) });
});
exposureRange.value = String(prefs.get('exposure'));
byId('out-exposure').textContent = `${prefs.get('exposure').toFixed(1)} EV`;
exposureRange.addEventListener('input', () => {
  const exposure = Number(exposureRange.value);
  byId('out-exposure').textContent = `${exposure.toFixed(1)} EV`;
  viewport.configure({ exposure });
});
exposureRange.addEventListener('change', () => prefs.set('exposure', Number(exposureRange.value)));

// --- side panel tabs ---
const tabs = [byId('tab-scene'), byId('tab-render'), byId('tab-api')];
function selectTab(tab) {
  for (const t of tabs) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    byId(t.getAttribute('aria-controls')).hidden = !selected;
  }
  if (tab.id === 'tab-api' && !explorer.schema && explorer.root.dataset.state !== 'loading') explorer.load();
  if (tab.id === 'tab-render' && renderSettings.root.dataset.state !== 'ready' && renderSettings.root.dataset.state !== 'loading') loadRenderSettings();
}
for (const tab of tabs) {
  tab.addEventListener('click', () => selectTab(tab));
  tab.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    const next = tabs[(tabs.indexOf(tab) + (event.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
    selectTab(next);
    next.focus();
  });
}
byId('btn-refresh-scene').addEventListener('click', () => outliner.load());

// --- dialogs: help and settings ---
const SHORTCUTS = [
  ['?', 'Show this help'],
  ['Space', 'Pause or continue rendering (restart when stopped)'],
  ['R', 'Restart rendering'],
  ['F', 'Fit the image to the viewport'],
  ['1', 'Show the image at actual size (1:1)'],
  ['S', 'Save the current frame as PNG'],
  ['Home', "Return to the scene's camera"],
  ['Click', 'Select the object under the pointer'],
  ['G', 'Drag a render region (Esc cancels)'],
  ['Ctrl + Z', 'Undo the last scene edit'],
  ['Ctrl + Shift + Z', 'Redo'],
  ['Ctrl + S', 'Save the project'],
  ['Arrow keys', 'Orbit the camera (viewport focused)'],
  ['Shift + arrows', 'Pan the camera (viewport focused)'],
  ['+ / −', 'Zoom in / out (viewport focused)'],
  ['H', 'Show or hide the statistics overlay'],
  ['V', 'Focus the viewport'],
  ['/', 'Search the API explorer'],
  ['Ctrl + Enter', 'Call the selected method (explorer)'],
  [',', 'Open settings'],
  ['Esc', 'Close a dialog'],
];
byId('shortcut-list').replaceChildren(...SHORTCUTS.map(([keys, what]) => h('tr', {}, h('th', { scope: 'row' }, h('kbd', {}, keys)), h('td', {}, what))));
const helpDialog = byId('dlg-help');
const settingsDialog = byId('dlg-settings');
byId('btn-help').addEventListener('click', () => helpDialog.showModal());

function openSettings() {
  byId('set-server').value = storedServer();
  byId('set-transport').value = prefs.get('transport');
  byId('set-maxfps').value = String(prefs.get('maxFps'));
  byId('set-camera-rate').value = String(prefs.get('cameraRate'));
  settingsDialog.showModal();
}
byId('btn-settings').addEventListener('click', openSettings);
settingsDialog.addEventListener('close', () => {
  if (settingsDialog.returnValue !== 'save') return;
  const server = byId('set-server').value;
  const serverChanged = server.trim() !== storedServer();
  try {
    storeServer(server);
  } catch {
    toast('The gateway URL is not a valid URL', 'error');
    return;
  }
  // prefs clamps numbers into range; a field left empty keeps the old value.
  const numberOr = (id, name) => (byId(id).value.trim() === '' ? prefs.get(name) : Number(byId(id).value));
  try {
    prefs.update({
      transport: byId('set-transport').value,
      maxFps: numberOr('set-maxfps', 'maxFps'),
      cameraRate: numberOr('set-camera-rate', 'cameraRate'),
    });
  } catch (err) {
    toast(err.message, 'error');
    return;
  }
  camera.sender.setRate(prefs.get('cameraRate'));
  if (serverChanged) {
    // Every module holds state from the old server; a reload is the honest way to switch.
    location.reload();
    return;
  }
  viewport.configure({ maxFps: prefs.get('maxFps') });
  if (!forcedTransport) viewport.setPreferred(prefs.get('transport'));
});

// --- keyboard shortcuts ---
document.addEventListener('keydown', (event) => {
  if (event.defaultPrevented || event.altKey) return;
  if (document.querySelector('dialog[open]')) return;
  if (event.ctrlKey || event.metaKey) {
    const key = event.key.toLowerCase();
    // In a text field the browser's own undo applies to the text.
    if ((key === 'z' || key === 'y') && !isTyping(event.target)) {
      event.preventDefault();
      if (key === 'y' || event.shiftKey) history.redo();
      else history.undo();
    } else if (key === 's') {
      event.preventDefault();
      projects.quickSave();
    }
    return;
  }
  if (isTyping(event.target)) return;
  const onButton = event.target instanceof Element && event.target.matches('button, summary, a[href]');
  const actions = {
    '?': () => helpDialog.showModal(),
    ' ': () => toggleRendering(),
    r: () => renderCommand('restart'),
    f: () => setZoom('fit'),
    1: () => setZoom('actual'),
    s: () => viewport.savePng(),
    g: () => tools.setRegionMode(!tools.regionMode),
    Escape: () => tools.setRegionMode(false),
    Home: () => camera.reset(),
    v: () => viewportEl.focus(),
    h: () => {
      const hudEl = byId('hud');
      hudEl.hidden = !hudEl.hidden;
    },
    '/': () => {
      selectTab(byId('tab-api'));
      byId('explorer-search').focus();
    },
    ',': openSettings,
  };
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  // Space on a focused button presses that button, not the shortcut.
  if (key === ' ' && onButton) return;
  const action = actions[key] ?? actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

// --- start-up and recovery ---
async function loadCamera() {
  try {
    await camera.load();
  } catch (err) {
    viewportEl.dataset.camera = 'error';
    if (err.unreachable) status.reportUnreachable();
  }
}

status.addEventListener('change', (event) => {
  const { gateway, upstream } = event.detail;
  if (gateway !== 'up' || upstream !== 'up') return;
  // Things that failed while something was down are fetched again.
  if (explorer.root.dataset.state === 'error') explorer.load();
  if (octaneUi !== true) return;
  if (!camera.camera) loadCamera();
  if (outliner.root.dataset.state === 'error' || outliner.meshList.dataset.state === 'error') outliner.load();
  if (document.body.dataset.engineModes === 'error') readEngineModes();
});
status.addEventListener('change', showStale);
status.addEventListener('recovered', () => {
  toast('Connection restored', 'ok', 3000);
  if (octaneUi !== true) return;
  viewport.start();
  // The server may have restarted with another camera: "reset view" goes to its camera.
  camera.home = null;
  loadCamera();
  outliner.load();
  readEngineModes();
  inspector.refresh();
  projects.readCurrent();
});

// --- what the gateway serves decides the page: Octane's panels, or the explorer first ---
/** null until the schema is known; then whether the viewport and scene panels run. */
let octaneUi = null;

function startOctaneUi() {
  if (octaneUi === true) return;
  octaneUi = true;
  document.body.dataset.layout = 'octane';
  for (const id of ['tab-scene', 'tab-render']) byId(id).hidden = false;
  viewport.start();
  loadCamera();
  outliner.load();
  stats.start();
  readEngineModes();
  projects.readCurrent();
}

/** In front of a service without Octane's render stream there is nothing to view: the
 *  explorer takes the page, and no Octane call is made to fail in the background. (A gateway
 *  that only refuses the camera's methods still shows the render.) */
function explorerFirst(support) {
  octaneUi = false;
  document.body.dataset.layout = 'explorer';
  viewport.stop();
  stats.stop();
  for (const id of ['tab-scene', 'tab-render']) byId(id).hidden = true;
  selectTab(byId('tab-api'));
  const note = byId('explorer-note');
  note.textContent = 'This gateway serves no Octane render stream, so the viewport and scene panels are hidden.';
  note.title = `Missing: ${support.missing.join(', ')}`;
  byId('explorer-note').hidden = false;
}

explorer.addEventListener('schema', (event) => {
  const { support } = event.detail;
  if (support.render) {
    byId('explorer-note').hidden = true;
    startOctaneUi();
  } else {
    explorerFirst(support);
  }
});

document.body.dataset.server = baseUrl();
status.start();
explorer.load().then((schema) => {
  // No schema (an old gateway, or none reachable yet): assume Octane, as before.
  if (!schema && octaneUi === null) startOctaneUi();
});
window.octaneweb = { status, viewport, camera, outliner, explorer, hud, rpc, selection, inspector, renderSettings, stats, tools, history, projects };
