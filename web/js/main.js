// Entry point: builds the modules, wires the controls, settings, shortcuts and recovery.

import { baseUrl, call, storedServer, storeServer, wsUrl } from './api.js';
import { CameraController } from './camera.js';
import { byId, h, isTyping, toast } from './dom.js';
import { Explorer } from './explorer.js';
import { Hud } from './hud.js';
import { Outliner } from './outliner.js';
import { Selection } from './selection.js';
import { sharedClient } from './rpc.js';
import { ConnectionStatus } from './status.js';
import { Viewport } from './viewport.js';

const PREFS_KEY = 'octaneweb.prefs';
const TRANSPORT_CHOICES = ['auto', 'ws', 'sse', 'poll'];
const ENCODINGS = ['jpeg', 'png', 'raw'];

function loadPrefs() {
  let stored = {};
  try {
    stored = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') || {};
  } catch {
    stored = {};
  }
  return {
    transport: TRANSPORT_CHOICES.includes(stored.transport) ? stored.transport : 'auto',
    maxFps: Number.isFinite(stored.maxFps) ? stored.maxFps : 0,
    cameraRate: Number.isFinite(stored.cameraRate) ? stored.cameraRate : 30,
    encoding: ENCODINGS.includes(stored.encoding) ? stored.encoding : undefined,
    quality: Number.isFinite(stored.quality) ? stored.quality : undefined,
    exposure: Number.isFinite(stored.exposure) ? stored.exposure : 0,
  };
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // Storage disabled: preferences last for this page only.
  }
}

const prefs = loadPrefs();
const query = new URLSearchParams(location.search);
// ?transport= forces the first transport for this page (tests and debugging).
const forcedTransport = TRANSPORT_CHOICES.includes(query.get('transport')) ? query.get('transport') : null;

const status = new ConnectionStatus({ banner: byId('banner'), indicator: byId('conn-indicator') });
const viewportEl = byId('viewport');
const viewport = new Viewport({
  root: viewportEl,
  canvas: byId('frame-canvas'),
  empty: byId('viewport-empty'),
  modeIndicator: byId('mode-indicator'),
  status,
  preferred: forcedTransport || prefs.transport,
  config: { encoding: prefs.encoding, quality: prefs.quality, maxFps: prefs.maxFps, exposure: prefs.exposure },
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
const camera = new CameraController({ surface: viewportEl, rate: prefs.cameraRate, rpc });
const selection = new Selection();
const outliner = new Outliner({ root: byId('outliner'), selection });
const explorer = new Explorer(byId('explorer'), { rpc });

// --- viewport, HUD, zoom, save ---
viewport.addEventListener('mode', (event) => hud.setMode(event.detail.label));
viewport.addEventListener('frame', (event) => {
  hud.onFrame(event.detail);
  byId('hdr-controls').hidden = !event.detail.hdr;
});
viewport.addEventListener('notice', (event) => {
  const message = event.detail;
  if (message.type === 'hello') reflectStreamSettings(message);
  if (message.type === 'projectManagerChanged') outliner.load();
});

function setZoom(zoom) {
  viewport.setZoom(zoom);
  byId('btn-fit').setAttribute('aria-pressed', String(zoom === 'fit'));
  byId('btn-actual').setAttribute('aria-pressed', String(zoom === 'actual'));
}
byId('btn-fit').addEventListener('click', () => setZoom('fit'));
byId('btn-actual').addEventListener('click', () => setZoom('actual'));
byId('btn-save').addEventListener('click', () => viewport.savePng());
byId('btn-reset-camera').addEventListener('click', () => camera.reset());
byId('mode-indicator').addEventListener('click', () => viewport.start());

// --- render engine controls ---
let renderPaused = false;
async function renderCommand(method, label) {
  try {
    await call('ApiRenderEngine', method, {});
    const states = { pauseRendering: 'paused', stopRendering: 'stopped', continueRendering: 'running', restartRendering: 'running' };
    renderPaused = states[method] !== 'running';
    document.body.dataset.render = states[method];
    toast(label, 'ok', 1500);
  } catch (err) {
    toast(`${method} failed: ${err.message}`, 'error');
    if (err.unreachable) status.reportUnreachable();
  }
}
byId('btn-pause').addEventListener('click', () => renderCommand('pauseRendering', 'Rendering paused'));
byId('btn-continue').addEventListener('click', () => renderCommand('continueRendering', 'Rendering continues'));
byId('btn-restart').addEventListener('click', () => renderCommand('restartRendering', 'Rendering restarted'));
byId('btn-stop').addEventListener('click', () => renderCommand('stopRendering', 'Rendering stopped'));

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
  showStreamSettings(prefs.encoding ?? hello.encoding, prefs.quality ?? Number(hello.quality));
}

showStreamSettings(prefs.encoding, prefs.quality);
encodingSelect.addEventListener('change', () => {
  prefs.encoding = encodingSelect.value;
  savePrefs(prefs);
  showStreamSettings();
  viewport.configure({ encoding: prefs.encoding });
});
qualityRange.addEventListener('input', () => {
  byId('out-quality').textContent = qualityRange.value;
});
qualityRange.addEventListener('change', () => {
  prefs.quality = Number(qualityRange.value);
  savePrefs(prefs);
  viewport.configure({ quality: prefs.quality });
});
exposureRange.value = String(prefs.exposure);
byId('out-exposure').textContent = `${prefs.exposure.toFixed(1)} EV`;
exposureRange.addEventListener('input', () => {
  prefs.exposure = Number(exposureRange.value);
  byId('out-exposure').textContent = `${prefs.exposure.toFixed(1)} EV`;
  viewport.configure({ exposure: prefs.exposure });
});
exposureRange.addEventListener('change', () => savePrefs(prefs));

// --- side panel tabs ---
const tabs = [byId('tab-scene'), byId('tab-api')];
function selectTab(tab) {
  for (const t of tabs) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    byId(t.getAttribute('aria-controls')).hidden = !selected;
  }
  if (tab.id === 'tab-api' && !explorer.schema && explorer.root.dataset.state !== 'loading') explorer.load();
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
  ['Space', 'Pause or continue rendering'],
  ['R', 'Restart rendering'],
  ['F', 'Fit the image to the viewport'],
  ['1', 'Show the image at actual size (1:1)'],
  ['S', 'Save the current frame as PNG'],
  ['Home', 'Reset the camera'],
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
  byId('set-transport').value = prefs.transport;
  byId('set-maxfps').value = String(prefs.maxFps);
  byId('set-camera-rate').value = String(prefs.cameraRate);
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
  const clamp = (value, min, max, fallback) => (Number.isFinite(value) ? Math.min(max, Math.max(min, Math.round(value))) : fallback);
  prefs.transport = byId('set-transport').value;
  prefs.maxFps = clamp(Number(byId('set-maxfps').value), 0, 240, 0);
  prefs.cameraRate = clamp(Number(byId('set-camera-rate').value), 1, 120, 30);
  savePrefs(prefs);
  camera.sender.setRate(prefs.cameraRate);
  if (serverChanged) {
    // Every module holds state from the old server; a reload is the honest way to switch.
    location.reload();
    return;
  }
  viewport.configure({ maxFps: prefs.maxFps });
  if (!forcedTransport) viewport.setPreferred(prefs.transport);
});

// --- keyboard shortcuts ---
document.addEventListener('keydown', (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (isTyping(event.target) || document.querySelector('dialog[open]')) return;
  const onButton = event.target instanceof Element && event.target.matches('button, summary, a[href]');
  const actions = {
    '?': () => helpDialog.showModal(),
    ' ': () => byId(renderPaused ? 'btn-continue' : 'btn-pause').click(),
    r: () => byId('btn-restart').click(),
    f: () => setZoom('fit'),
    1: () => setZoom('actual'),
    s: () => viewport.savePng(),
    Home: () => camera.reset(),
    v: () => viewportEl.focus(),
    h: () => {
      const hud = byId('hud');
      hud.hidden = !hud.hidden;
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
  if (!camera.camera) loadCamera();
  if (outliner.root.dataset.state === 'error' || outliner.meshList.dataset.state === 'error') outliner.load();
  if (explorer.root.dataset.state === 'error') explorer.load();
});
status.addEventListener('recovered', () => {
  toast('Connection restored', 'ok', 3000);
  viewport.start();
  // The server may have restarted with another camera: "reset view" goes to its camera.
  camera.home = null;
  loadCamera();
  outliner.load();
});

document.body.dataset.server = baseUrl();
status.start();
viewport.start();
loadCamera();
outliner.load();
explorer.load();
window.octaneweb = { status, viewport, camera, outliner, selection, explorer, hud, rpc };
