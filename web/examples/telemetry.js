// Training-telemetry dashboard for the example service in examples/telemetry, driven through
// the gateway's multiplexed WebSocket with rpc.js: GetJob and RestartJob (unary),
// WatchMetrics (server stream) feeding the loss chart, RecordNotes (client stream) and one
// Control bidi stream carrying pause / resume / set-learning-rate commands.
//
// State for tests and debugging is on <body>: data-connection, data-state, data-step,
// data-points, data-acks, data-learning-rate, data-run, data-notes.

import { RpcClient } from '../js/rpc.js';

const SERVICE = 'telemetry.v1.TrainingService';
/** Points kept for the chart (older ones scroll out). */
const MAX_POINTS = 2000;
/** Acknowledgements listed. */
const MAX_ACKS = 50;
/** Wait before opening a stream again after it failed. */
const RETRY_MS = 2000;
const CALL_TIMEOUT_MS = 10000;

const byId = (id) => document.getElementById(id);

/**
 * A field of a JSON message by its proto name (`learning_rate`). The gateway writes proto
 * field names; other proto3 JSON writers use lowerCamelCase (`learningRate`): both are read.
 */
function field(message, name) {
  if (!message || typeof message !== 'object') return undefined;
  if (name in message) return message[name];
  return message[name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())];
}
const num = (message, name) => Number(field(message, name) || 0);
// Relative to this page, so the dashboard also works behind a path prefix.
const wsUrl = new URL('../ws', location.href);
wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
const rpc = new RpcClient(wsUrl.href);

const points = [];
const rateChanges = [];
let currentRun = 0;
let control = null;
let commandCounter = 0;
let acks = 0;
let drawQueued = false;

function setConnection(state, text) {
  document.body.dataset.connection = state;
  byId('connection').textContent = text;
  byId('connection').dataset.state = state === 'live' ? 'ok' : state === 'error' ? 'error' : 'warn';
}

const stateLabel = (state) => String(state || 'JOB_STATE_UNSPECIFIED').replace(/^JOB_STATE_/, '').toLowerCase();

/** Shows a JobStatus (proto3 JSON: zero fields are left out, 64-bit numbers are strings). */
function showStatus(status) {
  const state = stateLabel(field(status, 'state'));
  const step = num(status, 'step');
  const run = num(status, 'run');
  if (run !== currentRun) {
    // A restart: the chart starts over.
    currentRun = run;
    points.length = 0;
    rateChanges.length = 0;
    document.body.dataset.points = '0';
    queueDraw();
  }
  // A unary answer can be older than the newest streamed batch: keep the newer step.
  const shownStep = Math.max(step, points.at(-1)?.step ?? 0);
  document.body.dataset.state = state;
  document.body.dataset.step = String(shownStep);
  document.body.dataset.learningRate = String(num(status, 'learning_rate'));
  document.body.dataset.run = String(run);
  document.body.dataset.notes = String(num(status, 'notes'));
  byId('job-state').textContent = state;
  byId('job-step').textContent = `${shownStep} / ${num(status, 'total_steps')}`;
  byId('job-epoch').textContent = String(num(status, 'epoch'));
  byId('job-lr').textContent = String(num(status, 'learning_rate'));
  if (step > 0) byId('job-loss').textContent = num(status, 'loss').toFixed(4);
  byId('job-run').textContent = String(run);
  byId('job-notes').textContent = String(num(status, 'notes'));
}

function onBatch(batch) {
  const step = num(batch, 'step');
  const learningRate = num(batch, 'learning_rate');
  if (num(batch, 'run') !== currentRun) return;
  const last = points.at(-1);
  if (last && learningRate !== last.learningRate) rateChanges.push(step);
  points.push({ step, loss: num(batch, 'loss'), learningRate });
  if (points.length > MAX_POINTS) points.shift();
  while (rateChanges.length && rateChanges[0] < points[0].step) rateChanges.shift();
  document.body.dataset.step = String(step);
  document.body.dataset.points = String(points.length);
  byId('job-step').textContent = byId('job-step').textContent.replace(/^\d+/, String(step));
  byId('job-epoch').textContent = String(num(batch, 'epoch'));
  byId('job-loss').textContent = num(batch, 'loss').toFixed(4);
  byId('job-accuracy').textContent = `${(num(batch, 'accuracy') * 100).toFixed(1)} %`;
  queueDraw();
}

function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    draw();
  });
}

/** The loss chart: steps across, loss up, dashed lines at learning-rate changes. */
function draw() {
  const canvas = byId('loss-chart');
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, width, height);
  const pad = { left: 48 * ratio, right: 12 * ratio, top: 12 * ratio, bottom: 24 * ratio };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  g.font = `${11 * ratio}px system-ui, sans-serif`;
  g.fillStyle = '#9aa4b2';
  g.strokeStyle = '#2a313c';
  g.lineWidth = ratio;
  g.strokeRect(pad.left, pad.top, plotW, plotH);
  if (points.length < 2) {
    g.fillText('Waiting for batches…', pad.left + 8 * ratio, pad.top + 16 * ratio);
    return;
  }
  const first = points[0].step;
  const last = points.at(-1).step;
  const maxLoss = Math.max(...points.map((p) => p.loss)) * 1.05 || 1;
  const x = (step) => pad.left + ((step - first) / Math.max(1, last - first)) * plotW;
  const y = (loss) => pad.top + plotH - (loss / maxLoss) * plotH;
  for (const fraction of [0, 0.5, 1]) {
    const value = maxLoss * fraction;
    g.fillText(value.toFixed(2), 4 * ratio, y(value) + 4 * ratio);
  }
  g.fillText(String(first), pad.left, height - 6 * ratio);
  const lastLabel = String(last);
  g.fillText(lastLabel, width - pad.right - g.measureText(lastLabel).width, height - 6 * ratio);
  g.save();
  g.setLineDash([4 * ratio, 4 * ratio]);
  g.strokeStyle = '#4fc3a1';
  for (const step of rateChanges) {
    g.beginPath();
    g.moveTo(x(step), pad.top);
    g.lineTo(x(step), pad.top + plotH);
    g.stroke();
  }
  g.restore();
  g.strokeStyle = '#f2a33a';
  g.lineWidth = 1.5 * ratio;
  g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p.loss)) : g.moveTo(x(p.step), y(p.loss))));
  g.stroke();
}

function logAck(text, accepted) {
  const list = byId('acks');
  const item = document.createElement('li');
  item.textContent = text;
  if (!accepted) item.className = 'refused';
  list.prepend(item);
  while (list.children.length > MAX_ACKS) list.lastElementChild.remove();
}

/** Follows WatchMetrics until it fails, then opens it again after a pause. */
async function watch() {
  for (;;) {
    try {
      const stream = rpc.serverStream(`${SERVICE}/WatchMetrics`, { every_steps: 1 });
      setConnection('live', 'Live');
      for await (const event of stream) {
        if (field(event, 'status')) showStatus(field(event, 'status'));
        if (field(event, 'batch')) onBatch(field(event, 'batch'));
      }
      setConnection('ended', 'Metrics stream ended');
    } catch (err) {
      setConnection('error', `Metrics: ${err.code || 'error'} ${err.message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** Opens the Control stream (if not open) and reads its acknowledgements until it ends. */
function ensureControl() {
  if (control) return control;
  const stream = rpc.bidi(`${SERVICE}/Control`);
  control = stream;
  (async () => {
    try {
      for await (const ack of stream) {
        acks += 1;
        document.body.dataset.acks = String(acks);
        const accepted = Boolean(field(ack, 'accepted'));
        logAck(`${field(ack, 'command_id') || '?'}: ${accepted ? 'accepted' : 'refused'} — ${field(ack, 'detail') || ''}`, accepted);
        if (field(ack, 'status')) showStatus(field(ack, 'status'));
      }
    } catch (err) {
      logAck(`Control stream failed: ${err.code || ''} ${err.message}`, false);
    } finally {
      if (control === stream) control = null;
    }
  })();
  return stream;
}

function sendCommand(action) {
  commandCounter += 1;
  const command = { command_id: `cmd-${commandCounter}`, ...action };
  try {
    ensureControl().send(command);
  } catch {
    // The stream ended between the two calls: open a fresh one.
    control = null;
    ensureControl().send(command);
  }
}

async function restart() {
  try {
    showStatus(await rpc.unary(`${SERVICE}/RestartJob`, {}, { timeoutMs: CALL_TIMEOUT_MS }));
    logAck('RestartJob: started a new run', true);
  } catch (err) {
    logAck(`RestartJob failed: ${err.code} ${err.message}`, false);
  }
}

async function addNote() {
  const input = byId('note-text');
  const text = input.value.trim();
  if (!text) return;
  const upload = rpc.clientStream(`${SERVICE}/RecordNotes`, { timeoutMs: CALL_TIMEOUT_MS });
  upload.send({ text });
  upload.end();
  try {
    const summary = await upload.response;
    input.value = '';
    document.body.dataset.notes = String(num(summary, 'kept'));
    byId('job-notes').textContent = String(num(summary, 'kept'));
    logAck(`RecordNotes: ${num(summary, 'accepted')} accepted, ${num(summary, 'kept')} kept`, true);
  } catch (err) {
    logAck(`RecordNotes failed: ${err.code} ${err.message}`, false);
  }
}

byId('btn-pause').addEventListener('click', () => sendCommand({ pause: {} }));
byId('btn-resume').addEventListener('click', () => sendCommand({ resume: {} }));
byId('btn-set-lr').addEventListener('click', () => sendCommand({ set_learning_rate: { learning_rate: Number(byId('lr-input').value) } }));
byId('btn-restart').addEventListener('click', restart);
byId('btn-note').addEventListener('click', addNote);
byId('note-text').addEventListener('keydown', (event) => {
  if (event.key === 'Enter') addNote();
});
window.addEventListener('resize', queueDraw);

async function start() {
  try {
    showStatus(await rpc.unary(`${SERVICE}/GetJob`, {}, { timeoutMs: CALL_TIMEOUT_MS }));
  } catch (err) {
    setConnection('error', `GetJob: ${err.code || 'error'} ${err.message}`);
  }
  queueDraw();
  watch();
}

start();
window.telemetry = { rpc, points, sendCommand };
