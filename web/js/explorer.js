// API explorer: every method of the schema served at GET /schema, with the comments of its
// .proto files. Pick a method, edit the request as a generated form or as JSON, add request
// metadata and a deadline, call it (server streams arrive message by message and can be
// cancelled), and see the answer or the precise error with the response headers, trailers,
// status details and timing; replay past calls, copy the equivalent curl command.
// Unary and server-streaming calls go over Connect (connect.js), which shows real headers
// and trailers. Client- and bidi-streaming methods run over the gateway's /ws (rpc.js): open
// the stream, send the edited request as often as wanted, half-close, and watch the answers
// arrive; curl cannot make those calls, so the explorer offers an rpc.js snippet instead.
// Methods the gateway's --allow / --deny policy refuses (`"refused": true` in /schema) are
// marked with a lock and cannot be called from here.
//
// The root element carries two states that must not be confused: `data-state` is the schema
// load (idle, loading, ready, error; main.js reloads the schema when it is "error") and
// `data-call` the last call (calling, streaming, done, error, cancelled). A failed call is
// not a failed schema, so it must never look like one.

import { getJson, url, wsUrl } from './api.js';
import { JSON_SHAPE, connectCurl, connectServerStream, connectUnary } from './connect.js';
import { h, toast } from './dom.js';
import { FormError, commentText, requestForm, shortName } from './form.js';
import { metadataEditor } from './metadata.js';
import { MAX_HISTORY, prefs } from './prefs.js';
import { octaneSupport } from './schema.js';

const MAX_HISTORY_REQUEST_CHARS = 20000;
const MAX_MATCHES = 200;
const MAX_STREAM_MESSAGES_SHOWN = 200;
const MAX_RESPONSE_CHARS = 200000;
/** Messages of a client or bidi stream kept in the history for replay. */
const MAX_REPLAY_MESSAGES = 50;
/** Why a method marked `refused` in /schema cannot be called. */
const REFUSED_REASON = "refused by this gateway's --allow/--deny policy";

function kindOf(method) {
  if (method.client_streaming && method.server_streaming) return 'bidi';
  if (method.client_streaming) return 'client stream';
  if (method.server_streaming) return 'server stream';
  return 'unary';
}

/** The patterns of /schema's `policy` as text, e.g. "deny LiveLink/Set*" ('' = none). */
function policyText(policy) {
  const parts = [];
  if (Array.isArray(policy?.deny) && policy.deny.length) parts.push(`deny ${policy.deny.join(', ')}`);
  if (Array.isArray(policy?.allow) && policy.allow.length) parts.push(`allow ${policy.allow.join(', ')}`);
  return parts.join('; ');
}

/** A padlock: marks methods the gateway refuses. */
function lockMark() {
  return h('span', { className: 'lock', 'aria-hidden': 'true' });
}

function clip(text) {
  return text.length > MAX_RESPONSE_CHARS ? `${text.slice(0, MAX_RESPONSE_CHARS)}\n… (${text.length - MAX_RESPONSE_CHARS} more characters)` : text;
}

/** "12 ms", or "1.25 s" from a second on. */
function duration(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

/**
 * A status detail as the explorer shows it: its type name and its fields, as the gateway
 * decoded them (it knows the whole schema and the standard google.rpc details), or its bytes
 * in base64 when it could not.
 */
function detailView(detail) {
  if (detail && typeof detail['@type'] === 'string') {
    // /ws: proto3 JSON Any, with the fields when the gateway knows the type.
    const { '@type': typeUrl, ...fields } = detail;
    return { type: typeUrl.slice(typeUrl.lastIndexOf('/') + 1), body: JSON.stringify(fields, null, 2) };
  }
  // Connect: the type's name, the bytes in base64, and the specification's optional `debug`
  // (the detail as JSON), which the gateway adds when it knows the type.
  const type = String(detail?.type ?? '?');
  const fields = detail?.debug && typeof detail.debug === 'object' ? detail.debug : { value: detail?.value ?? '' };
  return { type, body: JSON.stringify(fields, null, 2) };
}

/** A JavaScript string literal for a snippet. */
function jsString(text) {
  return JSON.stringify(String(text));
}

/** An rpc.js snippet making a client- or bidi-streaming call like the explorer's. */
function rpcSnippet(path, request, { bidi, metadata, timeoutMs }) {
  const options = {};
  if (metadata.length) options.metadata = Object.fromEntries(metadata);
  if (Number.isFinite(timeoutMs)) options.timeoutMs = timeoutMs;
  const optionsText = Object.keys(options).length ? `, ${JSON.stringify(options)}` : '';
  const lines = [
    `import { RpcClient } from ${jsString(url('js/rpc.js'))};`,
    '',
    `const rpc = new RpcClient(${jsString(wsUrl('ws'))});`,
  ];
  if (bidi) {
    lines.push(
      `const call = rpc.bidi(${jsString(path)}${optionsText});`,
      `call.send(${JSON.stringify(request)});`,
      'call.end(); // no more messages from this side',
      'for await (const answer of call) console.log(answer);',
      'console.log((await call.done).trailers);',
    );
  } else {
    lines.push(
      `const upload = rpc.clientStream(${jsString(path)}${optionsText});`,
      `upload.send(${JSON.stringify(request)});`,
      'upload.end(); // no more messages: the server answers now',
      'console.log(await upload.response);',
    );
  }
  lines.push('rpc.close();');
  return lines.join('\n');
}

function outcomeClass(outcome) {
  const text = String(outcome || '');
  if (text.startsWith('OK')) return 'ok';
  return text.startsWith('cancelled') ? '' : 'bad';
}

/**
 * Fires "schema" (detail `{schema, support}`, support from schema.js's octaneSupport) each
 * time GET /schema loads, so the page can decide what to show behind this gateway.
 */
export class Explorer extends EventTarget {
  /** `rpc`: an RpcClient (rpc.js) for client- and bidi-streaming calls. */
  constructor(root, { rpc = null } = {}) {
    super();
    this.root = root;
    this.rpc = rpc;
    /** The open client- or bidi-streaming call: {handle, sent, received, lines}. */
    this.open = null;
    this.schema = null;
    /** What the schema offers the page (schema.js octaneSupport); null until it loads. */
    this.support = null;
    this.method = null;
    this.service = null;
    this.form = null;
    this.view = 'form';
    this.running = null;
    // Past calls, newest first; prefs.js keeps them across visits (or for this page only).
    this.history = prefs.get('history');
    this.build();
  }

  build() {
    this.search = h('input', { type: 'search', id: 'explorer-search', placeholder: 'Filter methods (e.g. camera, ApiItem/name)', autocomplete: 'off', 'aria-label': 'Filter methods', oninput: () => this.renderMethods() });
    this.methodList = h('div', { className: 'method-list', id: 'explorer-methods', role: 'list', 'aria-label': 'Methods' });
    this.title = h('div', { className: 'method-title', id: 'explorer-method', 'aria-live': 'polite' }, h('span', { className: 'muted' }, 'Choose a method'));
    this.formTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'true', onclick: () => this.setView('form') }, 'Form');
    this.jsonTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'false', onclick: () => this.setView('json') }, 'JSON');
    this.formSlot = h('div', { className: 'form-slot', id: 'explorer-form' });
    this.jsonArea = h('textarea', { id: 'explorer-json', rows: 8, spellcheck: 'false', 'aria-label': 'Request JSON', hidden: true });
    this.callButton = h('button', { type: 'button', id: 'explorer-call', className: 'primary', disabled: true, title: 'Call (Ctrl+Enter)', onclick: () => this.call() }, 'Call');
    this.cancelButton = h('button', { type: 'button', id: 'explorer-cancel', disabled: true, onclick: () => this.cancel() }, 'Cancel');
    this.sendButton = h('button', { type: 'button', id: 'explorer-send', hidden: true, disabled: true, title: 'Send the request above as the next message', onclick: () => this.sendMessage() }, 'Send');
    this.endButton = h('button', { type: 'button', id: 'explorer-end', hidden: true, disabled: true, title: 'Half-close: no more messages from this side', onclick: () => this.halfClose() }, 'End sending');
    this.curlButton = h('button', { type: 'button', id: 'explorer-curl', disabled: true, onclick: () => this.copyText(this.curlText, 'curl command') }, 'Copy curl');
    this.snippetButton = h('button', { type: 'button', id: 'explorer-snippet', hidden: true, title: 'curl cannot stream requests: copy an rpc.js snippet instead', onclick: () => this.copyText(this.snippetText, 'rpc.js snippet') }, 'Copy rpc.js snippet');
    this.curlText = h('pre', { className: 'curl', id: 'explorer-curl-text' });
    this.snippetText = h('pre', { className: 'curl', id: 'explorer-snippet-text' });
    this.metadata = metadataEditor({ onChange: () => this.onMetadataChange() });
    this.metadataSummary = h('summary', {}, 'Metadata and deadline');
    this.metadataBox = h('details', { className: 'request-meta', id: 'explorer-metadata-box' }, this.metadataSummary, this.metadata.el);
    this.statusLine = h('div', { className: 'call-status', id: 'explorer-status', role: 'status', 'aria-live': 'polite' });
    this.meta = h('div', { className: 'response-meta', id: 'explorer-meta', hidden: true });
    this.response = h('pre', { className: 'response', id: 'explorer-response', tabindex: '0', 'aria-label': 'Response' });
    this.historyList = h('ol', { className: 'history', id: 'explorer-history', 'aria-label': 'Call history' });
    this.warnings = h('details', { className: 'schema-warnings', id: 'explorer-warnings', hidden: true });
    this.policyLine = h('p', { className: 'policy-line', id: 'explorer-policy', hidden: true });
    this.refusedNote = h('p', { className: 'refused-note', id: 'explorer-refused', role: 'note', hidden: true });

    this.root.replaceChildren(
      h('div', { className: 'explorer-picker' }, this.search, this.methodList, this.policyLine, this.warnings),
      h('div', { className: 'explorer-call' },
        this.title,
        this.editor = h('div', { className: 'request-editor', hidden: true },
          h('div', { className: 'editor-tabs', role: 'tablist', 'aria-label': 'Request editor' }, this.formTab, this.jsonTab),
          this.formSlot,
          this.jsonArea,
          this.metadataBox,
          this.refusedNote,
          h('div', { className: 'call-actions' }, this.callButton, this.sendButton, this.endButton, this.cancelButton, this.curlButton, this.snippetButton),
          this.curlBox = h('details', { className: 'curl-box', id: 'explorer-curl-box' }, h('summary', {}, 'curl command'), this.curlText),
          this.snippetBox = h('details', { className: 'curl-box', id: 'explorer-snippet-box', hidden: true },
            h('summary', {}, 'rpc.js snippet (curl cannot stream requests)'), this.snippetText)),
        this.statusLine,
        this.meta,
        this.response,
        h('details', { className: 'history-box', open: true }, h('summary', {}, 'History'), this.historyList)));
    // Keep the curl command in step with the request being edited.
    for (const source of [this.formSlot, this.jsonArea]) {
      source.addEventListener('input', () => this.scheduleCurlUpdate());
      source.addEventListener('change', () => this.scheduleCurlUpdate());
    }
    this.root.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && !this.callButton.disabled) {
        event.preventDefault();
        this.call();
      }
    });
    this.renderHistory();
  }

  /**
   * Loads GET /schema (again) and lists its methods. Resolves to the schema, or null when it
   * could not be loaded (`data-state="error"`, retried by main.js when the gateway is back).
   */
  async load() {
    this.root.dataset.state = 'loading';
    try {
      const schema = await getJson('schema');
      schema.messages ||= {};
      schema.enums ||= {};
      schema.services ||= [];
      schema.services.sort((a, b) => a.full_name.localeCompare(b.full_name));
      this.support = octaneSupport(schema);
      this.schema = schema;
    } catch (err) {
      // Unreachable, or not the schema document this client knows.
      this.root.dataset.state = 'error';
      this.methodList.replaceChildren(h('p', { className: 'error-text' }, `Could not load the schema: ${err.message}`));
      return null;
    }
    this.root.dataset.state = 'ready';
    this.root.dataset.methods = String(this.schema.services.reduce((n, s) => n + (s.methods?.length || 0), 0));
    this.root.dataset.octane = String(this.support.octane);
    this.renderWarnings(Array.isArray(this.schema.warnings) ? this.schema.warnings : []);
    this.renderPolicy();
    this.renderMethods();
    if (this.service && this.method) this.select(this.service.full_name, this.method.name, this.currentRequest(true));
    this.dispatchEvent(new CustomEvent('schema', { detail: { schema: this.schema, support: this.support } }));
    return this.schema;
  }

  /** Files the gateway skipped while loading the schema (e.g. conflicts in an SDK's protodef). */
  renderWarnings(warnings) {
    this.warnings.replaceChildren();
    this.warnings.hidden = warnings.length === 0;
    if (!warnings.length) return;
    this.warnings.append(
      h('summary', {}, `${warnings.length} schema warning${warnings.length === 1 ? '' : 's'}`),
      h('ul', {}, warnings.slice(0, 100).map((w) => h('li', {}, typeof w === 'string' ? w : String(w?.message ?? JSON.stringify(w))))));
  }

  /** The gateway's method policy, if it has one, and how many methods it refuses. */
  renderPolicy() {
    const patterns = policyText(this.schema.policy);
    const refused = this.schema.services.reduce((n, s) => n + s.methods.filter((m) => m.refused).length, 0);
    this.root.dataset.refused = String(refused);
    this.policyLine.hidden = !patterns && !refused;
    if (this.policyLine.hidden) return;
    this.policyLine.replaceChildren(lockMark(), ` ${refused} method${refused === 1 ? '' : 's'} refused by this gateway's policy${patterns ? ` (${patterns})` : ''}`);
    this.policyLine.title = 'Set when the gateway starts, with --allow and --deny; refused methods answer PERMISSION_DENIED';
  }

  renderMethods() {
    if (!this.schema) return;
    const filter = this.search.value.trim().toLowerCase();
    if (!filter) {
      // One collapsible group per service; methods are built when a group is opened.
      this.methodList.replaceChildren(...this.schema.services.map((service) => {
        const refused = service.methods.filter((m) => m.refused).length;
        const group = h('details', { className: 'service', dataset: { service: service.full_name } },
          h('summary', { title: service.comment || null }, h('span', {}, service.name), h('span', { className: 'muted' }, ` ${service.package} · ${service.methods.length}`),
            refused ? h('span', { className: 'refused-count', title: `${refused} of its methods ${REFUSED_REASON}` }, ' · ', lockMark(), ` ${refused}`) : null));
        group.addEventListener('toggle', () => {
          if (group.open && group.childElementCount === 1) group.append(...service.methods.map((m) => this.methodButton(service, m, false)));
        });
        return group;
      }));
      return;
    }
    const matches = [];
    for (const service of this.schema.services) {
      for (const method of service.methods) {
        const haystack = `${service.full_name}/${method.name} ${service.name}.${method.name}`.toLowerCase();
        if (haystack.includes(filter)) matches.push([service, method]);
        if (matches.length > MAX_MATCHES) break;
      }
    }
    const shown = matches.slice(0, MAX_MATCHES).map(([service, method]) => this.methodButton(service, method, true));
    if (!shown.length) shown.push(h('p', { className: 'muted' }, 'No method matches.'));
    if (matches.length > MAX_MATCHES) shown.push(h('p', { className: 'muted' }, `Showing the first ${MAX_MATCHES}; refine the filter.`));
    this.methodList.replaceChildren(...shown);
  }

  methodButton(service, method, withService) {
    const refused = Boolean(method.refused);
    const dataset = { method: `${service.full_name}/${method.name}` };
    if (refused) dataset.refused = 'true';
    return h('button', {
      type: 'button',
      role: 'listitem',
      className: refused ? 'method refused' : 'method',
      dataset,
      title: refused ? `${method.name}: ${REFUSED_REASON}` : method.comment || null,
      onclick: () => this.select(service.full_name, method.name),
    }, withService ? h('span', { className: 'muted' }, `${service.name}/`) : null, method.name,
    refused ? h('span', { className: 'visually-hidden' }, ` (${REFUSED_REASON})`) : null,
    kindOf(method) !== 'unary' ? h('span', { className: 'badge' }, kindOf(method)) : null,
    refused ? h('span', { className: 'badge refused' }, lockMark(), 'refused') : null);
  }

  findMethod(serviceName, methodName) {
    const service = this.schema?.services.find((s) => s.full_name === serviceName || s.name === serviceName);
    const method = service?.methods.find((m) => m.name === methodName);
    return service && method ? { service, method } : null;
  }

  /** Shows a method's request editor, optionally filled with `request` (JSON value). */
  select(serviceName, methodName, request) {
    const found = this.findMethod(serviceName, methodName);
    if (!found) {
      toast(`The schema has no method ${serviceName}/${methodName}`, 'error');
      return false;
    }
    const { service, method } = found;
    this.service = service;
    this.method = method;
    const kind = kindOf(method);
    this.title.replaceChildren(
      h('div', { className: 'method-path' }, `${service.full_name}/${method.name}`),
      h('div', { className: 'muted' }, `${kind} · ${shortName(method.input_type)} → ${shortName(method.output_type)}`));
    if (method.comment) this.title.append(h('p', { className: 'comment', id: 'explorer-method-comment' }, commentText(method.comment)));
    this.editor.hidden = false;
    this.form = requestForm(this.schema, method.input_type);
    this.formSlot.replaceChildren(this.form.el);
    if (request !== undefined) this.form.set(request);
    this.jsonArea.value = JSON.stringify(request ?? {}, null, 2);
    const streamsIn = Boolean(method.client_streaming);
    const refused = Boolean(method.refused);
    this.callButton.disabled = refused || Boolean(this.running) || (streamsIn && !this.rpc);
    this.callButton.textContent = streamsIn ? 'Open stream' : method.server_streaming ? 'Start stream' : 'Call';
    this.callButton.title = refused ? `Not callable: ${REFUSED_REASON}` : 'Call (Ctrl+Enter)';
    if (refused) this.callButton.setAttribute('aria-describedby', this.refusedNote.id);
    else this.callButton.removeAttribute('aria-describedby');
    this.refusedNote.hidden = !refused;
    if (refused) {
      const patterns = policyText(this.schema.policy);
      this.refusedNote.replaceChildren(lockMark(), h('span', {},
        h('strong', {}, 'Refused'), ` by this gateway's --allow/--deny policy${patterns ? ` (${patterns})` : ''}: calls to ${method.name} get PERMISSION_DENIED, so ${this.callButton.textContent} is off.`,
        streamsIn ? '' : ' The form still builds the request and its curl command.'));
    }
    this.sendButton.hidden = !streamsIn;
    this.endButton.hidden = !streamsIn;
    // curl cannot stream requests: client and bidi streams get an rpc.js snippet instead.
    this.curlButton.hidden = streamsIn;
    this.curlButton.disabled = streamsIn;
    this.curlBox.hidden = streamsIn;
    this.snippetButton.hidden = !streamsIn;
    this.snippetBox.hidden = !streamsIn;
    this.statusLine.dataset.outcome = '';
    this.statusLine.textContent = streamsIn && !refused
      ? `${kind}: open the stream, then send the request above as often as you like and end sending; runs over the gateway's WebSocket.`
      : '';
    this.clearMeta();
    this.response.textContent = '';
    this.root.dataset.selected = `${service.full_name}/${method.name}`;
    this.root.dataset.selectedRefused = String(refused);
    this.updateCurl();
    this.updateOpenStream();
    return true;
  }

  setView(view) {
    if (view === this.view || !this.form) {
      this.applyView(view);
      return;
    }
    try {
      if (view === 'json') {
        this.jsonArea.value = JSON.stringify(this.form.get(), null, 2);
      } else {
        this.form.set(this.parseJsonArea());
      }
    } catch (err) {
      toast(err.message, 'error');
      return;
    }
    this.applyView(view);
  }

  applyView(view) {
    this.view = view;
    this.formTab.setAttribute('aria-selected', String(view === 'form'));
    this.jsonTab.setAttribute('aria-selected', String(view === 'json'));
    this.formSlot.hidden = view !== 'form';
    this.jsonArea.hidden = view !== 'json';
    this.updateCurl();
  }

  parseJsonArea() {
    const text = this.jsonArea.value.trim();
    if (!text) return {};
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new FormError('request JSON', err.message);
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new FormError('request JSON', 'must be a JSON object');
    return value;
  }

  /** The request as a JSON value; with `lenient`, invalid input yields {} instead of throwing. */
  currentRequest(lenient = false) {
    try {
      return this.view === 'json' ? this.parseJsonArea() : (this.form?.get() ?? {});
    } catch (err) {
      if (lenient) return {};
      throw err;
    }
  }

  scheduleCurlUpdate() {
    clearTimeout(this.curlTimer);
    this.curlTimer = setTimeout(() => this.updateCurl(), 150);
  }

  /** The curl command, or for client and bidi streams the rpc.js snippet, of the call being edited. */
  updateCurl() {
    if (!this.method) return;
    const request = this.currentRequest(true);
    const options = { metadata: this.metadata.rows(false), timeoutMs: this.metadata.deadline(false) };
    if (this.method.client_streaming) {
      this.snippetText.textContent = rpcSnippet(`${this.service.full_name}/${this.method.name}`, request, { ...options, bidi: this.method.server_streaming });
      this.curlText.textContent = '';
    } else {
      this.curlText.textContent = connectCurl(this.service.full_name, this.method.name, request, { ...options, streaming: this.method.server_streaming });
      this.snippetText.textContent = '';
    }
  }

  onMetadataChange() {
    const rows = this.metadata.count();
    const deadline = this.metadata.deadline(false);
    const parts = [];
    if (rows) parts.push(`${rows} metadata row${rows === 1 ? '' : 's'}`);
    if (deadline !== undefined) parts.push(`deadline ${deadline} ms`);
    this.metadataSummary.textContent = `Metadata and deadline${parts.length ? ` (${parts.join(', ')})` : ''}`;
    this.scheduleCurlUpdate();
  }

  async copyText(pre, what) {
    this.updateCurl();
    const text = pre.textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast(`${what} copied`, 'ok', 2000);
    } catch {
      // Clipboard API needs a secure context; fall back to selecting the text.
      pre.closest('details').open = true;
      const range = document.createRange();
      range.selectNodeContents(pre);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      toast('Press Ctrl+C to copy the selected command', 'info', 3000);
    }
  }

  /** Calls the selected method; `replay` (client and bidi streams) are messages to send and then half-close. */
  async call({ replay } = {}) {
    if (!this.method || this.running || this.method.refused) return;
    let message;
    let options;
    try {
      message = this.currentRequest();
      options = { metadata: this.metadata.rows(), timeoutMs: this.metadata.deadline() };
    } catch (err) {
      if (err.path?.startsWith('metadata') || err.path === 'deadline') this.metadataBox.open = true;
      this.clearMeta();
      this.showError(err.message, 'INVALID_ARGUMENT');
      return;
    }
    this.updateCurl();
    const service = this.service.full_name;
    const method = this.method.name;
    // Huge requests (e.g. bytes) are not worth filling localStorage with. Metadata is not
    // kept at all: it often carries credentials.
    const storable = JSON.stringify(message).length <= MAX_HISTORY_REQUEST_CHARS;
    const entry = { service, method, request: storable ? message : {}, kind: kindOf(this.method), at: new Date().toISOString(), outcome: '' };
    if (options.timeoutMs !== undefined) entry.deadlineMs = options.timeoutMs;
    const call = { ...entry, request: message, ...options };
    this.clearMeta();
    if (this.method.client_streaming) await this.runClientStream({ ...call, replay }, entry);
    else if (this.method.server_streaming) await this.runStream(call, entry);
    else await this.runUnary(call, entry);
    this.history.unshift(entry);
    this.history.length = Math.min(this.history.length, MAX_HISTORY);
    prefs.set('history', this.history);
    this.renderHistory();
  }

  /** Runs `call` (with the full request) over Connect and records the outcome in `entry`. */
  async runUnary(call, entry) {
    const controller = new AbortController();
    this.setRunning(controller, 'calling');
    this.statusLine.dataset.outcome = '';
    this.statusLine.textContent = 'Calling…';
    this.response.textContent = '';
    const outcome = await connectUnary(call.service, call.method, call.request, { metadata: call.metadata, timeoutMs: call.timeoutMs, signal: controller.signal });
    this.setRunning(null);
    const ms = duration(outcome.timing.totalMs);
    this.renderMeta(outcome);
    if (outcome.code === 'OK') {
      entry.outcome = `OK · ${ms}`;
      this.root.dataset.call = 'done';
      this.statusLine.dataset.outcome = 'ok';
      this.statusLine.textContent = `OK · HTTP ${outcome.httpStatus} · ${ms}`;
      this.response.textContent = clip(JSON.stringify(outcome.data, null, 2));
    } else if (outcome.code === 'CANCELLED' && controller.signal.aborted) {
      entry.outcome = 'cancelled';
      this.root.dataset.call = 'cancelled';
      this.statusLine.dataset.outcome = 'cancelled';
      this.statusLine.textContent = `Cancelled after ${ms}`;
    } else {
      entry.outcome = `${outcome.code} · ${ms}`;
      this.showError(outcome.message, outcome.code, outcome.httpStatus, ms);
    }
  }

  /** Runs a server stream over Connect: messages appear as they arrive, until it ends. */
  async runStream(call, entry) {
    const controller = new AbortController();
    this.setRunning(controller, 'streaming');
    this.response.textContent = '';
    this.statusLine.dataset.outcome = '';
    this.statusLine.textContent = 'Streaming… 0 messages';
    const lines = [];
    this.root.dataset.messages = '0';
    const outcome = await connectServerStream(call.service, call.method, call.request, {
      metadata: call.metadata,
      timeoutMs: call.timeoutMs,
      signal: controller.signal,
      onHeaders: (headers) => this.renderMeta({ headers, pending: true }),
      onMessage: (message, count) => {
        lines.push(`#${count} ${JSON.stringify(message, null, 2)}`);
        if (lines.length > MAX_STREAM_MESSAGES_SHOWN) lines.shift();
        const atBottom = this.response.scrollHeight - this.response.scrollTop - this.response.clientHeight < 40;
        this.response.textContent = clip(lines.join('\n'));
        // Follow new messages unless the user scrolled up to read.
        if (atBottom) this.response.scrollTop = this.response.scrollHeight;
        this.root.dataset.messages = String(count);
        this.statusLine.textContent = `Streaming… ${count} message${count === 1 ? '' : 's'}`;
      },
    });
    this.setRunning(null);
    const count = outcome.messages;
    const plural = `${count} message${count === 1 ? '' : 's'}`;
    const ms = duration(outcome.timing.totalMs);
    this.renderMeta(outcome);
    if (outcome.code === 'OK') {
      entry.outcome = `OK · ${count} messages · ${ms}`;
      this.root.dataset.call = 'done';
      this.statusLine.dataset.outcome = 'ok';
      this.statusLine.textContent = `Stream ended OK · ${plural} · ${ms}`;
    } else if (outcome.code === 'CANCELLED' && controller.signal.aborted) {
      entry.outcome = `cancelled · ${count} messages`;
      this.root.dataset.call = 'cancelled';
      this.statusLine.dataset.outcome = 'cancelled';
      this.statusLine.textContent = `Cancelled after ${plural}`;
    } else {
      entry.outcome = `${outcome.code} · ${count} messages`;
      // An error inside the stream comes with HTTP 200: only a refusal has a status to show.
      this.showError(outcome.message || 'the stream failed', outcome.code, outcome.httpStatus === 200 ? 0 : outcome.httpStatus, ms, count > 0);
    }
  }

  /**
   * Runs a client- or bidi-streaming call over /ws until it ends: Send and End sending act on
   * it meanwhile. The request being edited when the stream opens is not sent by itself.
   */
  async runClientStream(call, entry) {
    const controller = new AbortController();
    this.setRunning(controller, 'streaming');
    this.response.textContent = '';
    this.statusLine.dataset.outcome = '';
    const started = performance.now();
    const timing = { headersMs: null, firstMessageMs: null, totalMs: null };
    const handle = this.rpc.bidi(`${call.service}/${call.method}`, {
      signal: controller.signal,
      metadata: Object.fromEntries(call.metadata),
      timeoutMs: call.timeoutMs,
      jsonNames: JSON_SHAPE.names,
      jsonDefaults: JSON_SHAPE.defaults,
      onHeaders: (headers) => {
        timing.headersMs = performance.now() - started;
        this.renderMeta({ headers, pending: true });
      },
    });
    const open = { handle, path: `${call.service}/${call.method}`, sent: 0, received: 0, lines: [], halfClosed: false, kept: [], keptChars: 0 };
    this.open = open;
    this.root.dataset.messages = '0';
    this.root.dataset.sent = '0';
    this.updateOpenStream();
    if (Array.isArray(call.replay)) {
      for (const message of call.replay) this.sendMessage(message);
      this.halfClose();
    }
    try {
      for await (const message of handle) {
        open.received += 1;
        if (timing.firstMessageMs === null) timing.firstMessageMs = performance.now() - started;
        this.appendLine(open, `← #${open.received} ${JSON.stringify(message, null, 2)}`);
        this.root.dataset.messages = String(open.received);
        this.updateOpenStream();
      }
      const { headers, trailers } = await handle.done;
      timing.totalMs = performance.now() - started;
      const ms = duration(timing.totalMs);
      this.renderMeta({ code: 'OK', message: '', details: [], headers, trailers, timing });
      entry.outcome = `OK · ${open.sent} sent · ${open.received} received · ${ms}`;
      this.root.dataset.call = 'done';
      this.statusLine.dataset.outcome = 'ok';
      this.statusLine.textContent = `Stream ended OK · ${open.sent} sent · ${open.received} received · ${ms}`;
    } catch (err) {
      timing.totalMs = performance.now() - started;
      this.renderMeta({ code: err.code || 'UNKNOWN', message: err.message, details: err.details || [], headers: err.headers || {}, trailers: err.trailers || {}, timing });
      if (err.code === 'CANCELLED' && controller.signal.aborted) {
        entry.outcome = `cancelled · ${open.sent} sent · ${open.received} received`;
        this.root.dataset.call = 'cancelled';
        this.statusLine.dataset.outcome = 'cancelled';
        this.statusLine.textContent = `Cancelled after ${open.sent} sent and ${open.received} received`;
      } else {
        entry.outcome = `${err.code || 'error'} · ${open.sent} sent`;
        this.showError(err.message, err.code, 0, duration(timing.totalMs), true);
      }
    } finally {
      // What was sent, for Replay (unless it was too much to keep).
      if (open.kept) entry.messages = open.kept;
      this.open = null;
      this.setRunning(null);
      this.updateOpenStream();
    }
  }

  clearMeta() {
    this.meta.hidden = true;
    this.meta.replaceChildren();
    delete this.root.dataset.status;
  }

  /**
   * Shows what the answer carried beside its messages: the status (code, message, details),
   * timing, response headers and trailers. `pending`: the headers of a call still running.
   */
  renderMeta({ code, message, details = [], headers = {}, trailers = {}, timing, pending = false }) {
    const table = (id, title, entries) => h('details', { className: 'meta-table', id, open: true },
      h('summary', {}, `${title} (${entries.length})`),
      entries.length
        ? h('dl', {}, entries.map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]))
        : h('p', { className: 'muted' }, 'none'));
    const parts = [];
    if (!pending) {
      this.root.dataset.status = code;
      parts.push(h('div', { className: `status-block ${code === 'OK' ? 'ok' : 'bad'}`, id: 'explorer-grpc-status' },
        h('span', { className: 'meta-title' }, 'Status'),
        h('span', { className: 'code-name' }, code),
        message ? h('span', { className: 'status-message' }, message) : null));
      if (details.length) {
        parts.push(h('div', { className: 'status-details', id: 'explorer-details' },
          h('div', { className: 'meta-title' }, `Status details (${details.length})`),
          details.map((detail) => {
            const view = detailView(detail);
            return h('div', { className: 'detail' }, h('div', { className: 'method-path' }, view.type), h('pre', {}, view.body));
          })));
      }
      const steps = [];
      if (timing?.headersMs != null) steps.push(`headers ${duration(timing.headersMs)}`);
      if (timing?.firstMessageMs != null) steps.push(`first message ${duration(timing.firstMessageMs)}`);
      if (timing?.totalMs != null) steps.push(`total ${duration(timing.totalMs)}`);
      if (steps.length) parts.push(h('p', { className: 'timing', id: 'explorer-timing' }, `Timing: ${steps.join(' · ')}`));
    }
    parts.push(table('explorer-headers', 'Response headers', Object.entries(headers)));
    if (!pending) parts.push(table('explorer-trailers', 'Trailers', Object.entries(trailers)));
    this.meta.replaceChildren(...parts);
    this.meta.hidden = false;
  }

  appendLine(open, line) {
    open.lines.push(line);
    if (open.lines.length > MAX_STREAM_MESSAGES_SHOWN) open.lines.shift();
    const atBottom = this.response.scrollHeight - this.response.scrollTop - this.response.clientHeight < 40;
    this.response.textContent = clip(open.lines.join('\n'));
    if (atBottom) this.response.scrollTop = this.response.scrollHeight;
  }

  /** Sends `given`, or else the request being edited, as the open stream's next message. */
  sendMessage(given) {
    const open = this.open;
    if (!open || open.halfClosed || open.path !== this.root.dataset.selected) return;
    let message = given;
    if (message === undefined) {
      try {
        message = this.currentRequest();
      } catch (err) {
        toast(err.message, 'error');
        return;
      }
    }
    try {
      open.handle.send(message);
    } catch (err) {
      toast(err.message, 'error');
      return;
    }
    open.sent += 1;
    if (open.kept) {
      open.keptChars += JSON.stringify(message).length;
      if (open.kept.length < MAX_REPLAY_MESSAGES && open.keptChars <= MAX_HISTORY_REQUEST_CHARS) open.kept.push(message);
      else open.kept = null;
    }
    this.root.dataset.sent = String(open.sent);
    this.appendLine(open, `→ #${open.sent} ${JSON.stringify(message)}`);
    this.updateOpenStream();
  }

  /** Half-closes the open stream: the server sees the end of the messages and answers. */
  halfClose() {
    const open = this.open;
    if (!open || open.halfClosed) return;
    open.halfClosed = true;
    open.handle.end();
    this.appendLine(open, '→ (end of messages)');
    this.updateOpenStream();
  }

  updateOpenStream() {
    // Another method selected meanwhile: its form does not fit the open stream.
    const open = this.open?.path === this.root.dataset.selected ? this.open : null;
    this.sendButton.disabled = !open || open.halfClosed;
    this.endButton.disabled = !open || open.halfClosed;
    if (!open) return;
    const state = open.halfClosed ? 'sending ended, waiting for the server' : 'open';
    this.statusLine.textContent = `Stream ${state} · ${open.sent} sent · ${open.received} received`;
  }

  showError(message, code = '', status = 0, ms = '', keepResponse = false) {
    this.root.dataset.call = 'error';
    this.statusLine.dataset.outcome = 'error';
    const parts = ['Error'];
    if (status) parts.push(`HTTP ${status}`);
    if (code) parts.push(code);
    if (ms) parts.push(ms);
    this.statusLine.textContent = parts.join(' · ');
    const text = `${code ? `${code}: ` : ''}${message}`;
    this.response.textContent = keepResponse ? `${this.response.textContent}\n\n${text}` : text;
  }

  setRunning(controller, state) {
    this.running = controller;
    if (state) this.root.dataset.call = state;
    this.callButton.disabled = Boolean(controller) || !this.method || Boolean(this.method.refused) || (this.method.client_streaming && !this.rpc);
    this.cancelButton.disabled = !controller;
  }

  cancel() {
    this.running?.abort();
  }

  renderHistory() {
    if (!this.history.length) {
      this.historyList.replaceChildren(h('li', { className: 'muted' }, 'No calls yet.'));
      return;
    }
    this.historyList.replaceChildren(...this.history.map((entry, index) => h('li', { dataset: { index: String(index) } },
      h('div', { className: 'history-main' },
        h('span', { className: 'method-path' }, `${shortName(entry.service)}/${entry.method}`),
        h('span', { className: `badge ${outcomeClass(entry.outcome)}` }, entry.outcome || '…')),
      h('div', { className: 'history-actions' },
        h('button', { type: 'button', className: 'small ghost', onclick: () => this.restore(entry) }, 'Edit'),
        h('button', { type: 'button', className: 'small', onclick: () => this.replay(entry) }, 'Replay')))));
  }

  restore(entry) {
    if (!this.schema) return false;
    const ok = this.select(entry.service, entry.method, entry.request);
    if (ok && this.view === 'json') this.jsonArea.value = JSON.stringify(entry.request ?? {}, null, 2);
    // The deadline comes back with the call; metadata rows stay as they are (never stored).
    if (ok) this.metadata.setDeadline(entry.deadlineMs);
    if (ok) this.onMetadataChange();
    return ok;
  }

  async replay(entry) {
    if (this.running) {
      toast('A call is still running', 'info');
      return;
    }
    if (!this.restore(entry)) return;
    // A client or bidi stream is replayed with the messages it sent, then half-closed.
    await this.call({ replay: Array.isArray(entry.messages) ? entry.messages : undefined });
  }
}
