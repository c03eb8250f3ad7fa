// Octane's API as the web client uses it. Every Octane service and method name the UI
// calls is here, so the panels speak in scene terms (nodes, pins, values, projects) and a
// change of the wire interface touches one file.
//
// Everything is read from what the server reports (pin infos, attribute infos, node infos),
// never from a list of node types kept here, so the same code inspects the reference render
// server's scene and a real Octane scene.

import { ApiError, batch, call } from './api.js';

/** Calls in flight at once when the gateway has no /batch. */
const CONCURRENCY = 6;

/** False once the gateway answered that it has no /batch; single calls from then on. */
let batchAvailable = true;

/**
 * Runs unary calls `[{service, method, params}]` in as few round trips as possible (POST
 * /batch, or a few single calls at a time without it); resolves to one `{ok, data, error}`
 * per call, in order.
 */
export async function callMany(calls) {
  if (!calls.length) return [];
  if (batchAvailable) {
    try {
      return await batch(calls);
    } catch (err) {
      // Only a missing route means "no batching here"; other errors are the answer.
      if (![404, 405, 501].includes(err.status) || !String(err.message).startsWith('batch:')) throw err;
      batchAvailable = false;
    }
  }
  const results = new Array(calls.length);
  let next = 0;
  const worker = async () => {
    while (next < calls.length) {
      const index = next;
      next += 1;
      const { service, method, params } = calls[index];
      try {
        results[index] = { ok: true, data: await call(service, method, params) };
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, calls.length) }, worker));
  return results;
}

/** The data of a result of callMany, or its error thrown. */
export function dataOf(result) {
  if (!result.ok) throw result.error;
  return result.data;
}

// --- object references ---

/** True for a reference that names something (handle 0 means "nothing" on Octane's wire). */
export function isRef(ref) {
  return Boolean(ref && typeof ref === 'object' && ref.handle !== undefined && String(ref.handle) !== '0');
}

/** A stable string for a reference, for maps and data attributes. */
export function refKey(ref) {
  return isRef(ref) ? String(ref.handle) : '';
}

/** True for a reference to a node graph (the root graph included) rather than a node. */
export function isGraphRef(ref) {
  return /Graph$/.test(String(ref?.type ?? ''));
}

const obj = (ref) => ({ objectPtr: ref });
/** Both spellings of a JSON field: proto names today, lowerCamelCase from other routes. */
function field(data, protoName) {
  if (!data) return undefined;
  if (protoName in data) return data[protoName];
  const camel = protoName.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
  return data[camel];
}

// --- LiveLink: the camera and meshes ---

export const camera = {
  /** The client-streaming method drags stream camera states over (rpc.js path form). */
  STREAM_METHOD: 'LiveLink/StreamCamera',
  get: (options) => call('LiveLink', 'GetCamera', {}, options),
  set: (state, options) => call('LiveLink', 'SetCamera', state, options),
  meshes: async () => {
    const data = await call('LiveLink', 'GetMeshes', {});
    return Array.isArray(data.meshes) ? data.meshes : [];
  },
};

// --- the render engine ---

/** RenderState names, as the server reports them, to the words the UI shows. */
export const RENDER_STATES = {
  RSTATE_STOPPED: 'stopped',
  RSTATE_WAITING_FOR_DATA: 'waiting',
  RSTATE_RENDERING: 'rendering',
  RSTATE_PAUSED: 'paused',
  RSTATE_FINISHED: 'finished',
};
const RENDER_STATE_NUMBERS = ['RSTATE_STOPPED', 'RSTATE_WAITING_FOR_DATA', 'RSTATE_RENDERING', 'RSTATE_PAUSED', 'RSTATE_FINISHED'];

/** The UI word for a render state given by name or number. */
export function renderStateWord(state) {
  const name = typeof state === 'number' ? RENDER_STATE_NUMBERS[state] : state;
  return RENDER_STATES[name] ?? 'unknown';
}

const engine = (method, params = {}, options) => call('ApiRenderEngine', method, params, options);

export const renderEngine = {
  pause: () => engine('pauseRendering'),
  resume: () => engine('continueRendering'),
  restart: () => engine('restartRendering'),
  stop: () => engine('stopRendering'),
  /** RenderResultStatistics (samples, speed, times, state, size). */
  statistics: async (options) => (await engine('getRenderStatistics', {}, options)).statistics ?? {},
  renderTargetNode: async () => (await engine('getRenderTargetNode')).result ?? null,
  /** `{active, regionMin: {x, y}, regionMax: {x, y}, featherWidth}` in film pixels, max exclusive. */
  region: () => engine('getRenderRegion'),
  setRegion: (region) => engine('setRenderRegion', region),
  clearRegion: () => engine('setRenderRegion', { active: false, regionMin: { x: 0, y: 0 }, regionMax: { x: 0, y: 0 }, featherWidth: 0 }),
  /** 'CLAY_MODE_NONE' | 'CLAY_MODE_GREY' | 'CLAY_MODE_COLOR' */
  clayMode: async () => (await engine('clayMode')).result ?? 'CLAY_MODE_NONE',
  setClayMode: (mode) => engine('setClayMode', { mode }),
  /** 'SUBSAMPLEMODE_NONE' | 'SUBSAMPLEMODE_2X2' | 'SUBSAMPLEMODE_4X4' */
  subSampleMode: async () => (await engine('getSubSampleMode')).result ?? 'SUBSAMPLEMODE_NONE',
  setSubSampleMode: (mode) => engine('setSubSampleMode', { mode }),
  /** The first thing under film pixel (x, y): `{node, depth, position, ...}` or null. */
  pick: async (x, y) => {
    const data = await engine('pick', { x: Math.max(0, Math.floor(x)), y: Math.max(0, Math.floor(y)), intersectionsSize: 1 });
    const hit = data.intersections;
    return Number(data.result) > 0 && hit && isRef(hit.node) ? hit : null;
  },
  /** Device names, memory and geometry in one round trip; missing parts are null. */
  hardware: async () => {
    const [count, name, memory, geometry] = await callMany([
      { service: 'ApiRenderEngine', method: 'getDeviceCount', params: {} },
      { service: 'ApiRenderEngine', method: 'getDeviceName', params: { index: 0 } },
      { service: 'ApiRenderEngine', method: 'getMemoryUsage', params: { deviceIx: 0 } },
      { service: 'ApiRenderEngine', method: 'getGeometryStatistics', params: {} },
    ]);
    return {
      deviceCount: count.ok ? Number(count.data.result) || 0 : null,
      deviceName: name.ok ? String(name.data.result ?? '') : null,
      memory: memory.ok ? field(memory.data, 'memUsage') ?? null : null,
      geometry: geometry.ok ? geometry.data.stats ?? null : null,
    };
  },
};

// --- projects ---

export const project = {
  rootGraph: async () => {
    const data = await call('ApiProjectManager', 'rootNodeGraph', {});
    if (!isRef(data.result)) throw new ApiError('rootNodeGraph returned no graph');
    return data.result;
  },
  /** The path of the open project ('' for a new, unsaved one). */
  current: async () => String((await call('ApiProjectManager', 'getCurrentProject', {})).result ?? ''),
  reset: () => expectTrue(call('ApiProjectManager', 'resetProject', { suppressUI: true }), 'resetProject'),
  load: (path) => expectTrue(call('ApiProjectManager', 'loadProject', { projectPath: path, evaluate: true }), `loading ${path}`),
  save: () => expectTrue(call('ApiProjectManager', 'saveProject', {}), 'saveProject'),
  saveAs: (path) => expectTrue(call('ApiProjectManager', 'saveProjectAs', { path }), `saving ${path}`),
};

/** Octane answers some failures with `result: false` rather than an error status. */
async function expectTrue(pending, what) {
  const data = await pending;
  if (data.result === false) throw new ApiError(`${what} failed (the server answered false)`);
  return data;
}

// --- the node system ---

/** Reads `{ref, name, isGraph, outType}` for each reference, in one round trip. */
export async function describeItems(refs) {
  const answers = await callMany(refs.flatMap((ref) => ['name', 'isGraph', 'outType'].map((method) => ({ service: 'ApiItem', method, params: obj(ref) }))));
  return refs.map((ref, i) => {
    const [name, isGraph, outType] = answers.slice(i * 3, i * 3 + 3);
    return {
      ref,
      name: name.ok ? String(name.data.result ?? '') : '',
      isGraph: isGraph.ok ? Boolean(isGraph.data.result) : isGraphRef(ref),
      outType: outType.ok ? String(outType.data.result ?? '') : '',
      error: name.ok ? null : name.error,
    };
  });
}

/**
 * The items a graph owns, at most `limit` of them described, plus the full count.
 * Four round trips whatever the size: getOwnedItems, size, the gets, the descriptions.
 */
export async function ownedItems(graphRef, limit = 500) {
  const owned = await call('ApiNodeGraph', 'getOwnedItems', obj(graphRef));
  const list = owned.list;
  if (!isRef(list)) return { total: 0, items: [] };
  const total = Number((await call('ApiItemArray', 'size', obj(list))).result) || 0;
  const count = Math.min(total, limit);
  const gets = await callMany(Array.from({ length: count }, (_, index) => ({ service: 'ApiItemArray', method: 'get', params: { objectPtr: list, index } })));
  const refs = gets.map((result) => dataOf(result).result).filter(isRef);
  return { total, items: await describeItems(refs) };
}

/** Pin infos are fixed per node type and pin index: read once per page. */
const pinInfoCache = new Map();
/** Attribute infos of A_VALUE per node type. */
const valueAttrCache = new Map();

/** The attribute that holds a value node's value (Octane's A_VALUE). */
export const VALUE_ATTRIBUTE = 'A_VALUE';

/**
 * Reads a node for the inspector: its info, name and every input pin with its pin info and
 * what is linked into it. A pin linked to a value node (one that "takes the pin default
 * value", as Octane's float, int and colour nodes do) carries that node's value, so the
 * inspector edits it in place; any other link is a node (or graph) to follow.
 *
 * Resolves to `{ref, name, info, pins: [{index, info, linked, value}], value}` where a pin's
 * `linked` is `{ref, name, type, isValueNode, isGraph}` or null and `value` is
 * `{attrType, data}` (data in the JSON of the attribute's type) or null. For a value node
 * itself, `value` is its own value.
 */
export async function readNode(ref) {
  const [infoResult, nameResult, countResult] = await callMany([
    { service: 'ApiNode', method: 'info', params: obj(ref) },
    { service: 'ApiItem', method: 'name', params: obj(ref) },
    { service: 'ApiNode', method: 'pinCount', params: obj(ref) },
  ]);
  const info = dataOf(infoResult).result ?? {};
  const name = nameResult.ok ? String(nameResult.data.result ?? '') : '';
  const pinCount = countResult.ok ? Number(countResult.data.result) || 0 : 0;
  const node = { ref, name, info, pins: [], value: null };

  // Pin infos (cached per type) and links.
  const indices = Array.from({ length: pinCount }, (_, i) => i);
  const uncached = indices.filter((i) => !pinInfoCache.has(`${info.type}/${i}`));
  const first = await callMany([
    ...uncached.map((index) => ({ service: 'ApiNode', method: 'pinInfoIx', params: { objectPtr: ref, index } })),
    ...indices.map((pinIx) => ({ service: 'ApiNode', method: 'connectedNodeIx', params: { objectPtr: ref, pinIx, enterWrapperNode: true } })),
  ]);
  const infoRefs = first.slice(0, uncached.length).map((r) => (r.ok ? r.data.result : null));
  const links = first.slice(uncached.length).map((r) => (r.ok && isRef(r.data.result) ? r.data.result : null));
  const infoAnswers = await callMany(infoRefs.filter(isRef).map((pinInfo) => ({ service: 'ApiNodePinInfoEx', method: 'getApiNodePinInfo', params: obj(pinInfo) })));
  let k = 0;
  uncached.forEach((i, j) => {
    if (!isRef(infoRefs[j])) return;
    const answer = infoAnswers[k++];
    if (answer.ok) pinInfoCache.set(`${info.type}/${i}`, field(answer.data, 'nodePinInfo') ?? {});
  });

  // What is linked: names and infos of linked nodes (graphs have no node info).
  const linkedNodes = links.map((link, i) => ({ link, i })).filter(({ link }) => link);
  const linkAnswers = await callMany(linkedNodes.flatMap(({ link }) => [
    { service: 'ApiItem', method: 'name', params: obj(link) },
    isGraphRef(link) ? { service: 'ApiItem', method: 'isGraph', params: obj(link) } : { service: 'ApiNode', method: 'info', params: obj(link) },
  ]));
  const linked = new Array(pinCount).fill(null);
  linkedNodes.forEach(({ link, i }, j) => {
    const [linkName, linkInfo] = [linkAnswers[j * 2], linkAnswers[j * 2 + 1]];
    const nodeInfo = !isGraphRef(link) && linkInfo.ok ? linkInfo.data.result ?? {} : {};
    linked[i] = {
      ref: link,
      name: linkName.ok ? String(linkName.data.result ?? '') : '',
      type: nodeInfo.type ?? (isGraphRef(link) ? 'graph' : ''),
      isGraph: isGraphRef(link),
      isValueNode: Boolean(nodeInfo.takesPinDefaultValue),
    };
  });

  // Values of the value nodes linked into pins, and the node's own if it is one.
  const valueHolders = linked.map((l, i) => ({ l, i })).filter(({ l }) => l?.isValueNode);
  const own = info.takesPinDefaultValue ? [{ ref, type: info.type }] : [];
  const holders = [...valueHolders.map(({ l }) => ({ ref: l.ref, type: l.type })), ...own];
  const values = await readValues(holders);
  node.pins = indices.map((index) => {
    const holderIndex = valueHolders.findIndex(({ i }) => i === index);
    return {
      index,
      info: pinInfoCache.get(`${info.type}/${index}`) ?? {},
      linked: linked[index],
      value: holderIndex >= 0 ? values[holderIndex] : null,
    };
  });
  if (own.length) node.value = values[values.length - 1];
  return node;
}

/** AttributeType names of attribute infos to the value kinds of get/set requests. */
const ATTRIBUTE_KINDS = {
  AT_BOOL: ['ATTR_ID_BOOL', 'bool_value'],
  AT_INT: ['ATTR_ID_INT', 'int_value'],
  AT_INT2: ['ATTR_ID_INT2', 'int2_value'],
  AT_INT3: ['ATTR_ID_INT3', 'int3_value'],
  AT_INT4: ['ATTR_ID_INT4', 'int4_value'],
  AT_LONG: ['ATTR_ID_LONG', 'long_value'],
  AT_LONG2: ['ATTR_ID_LONG2', 'long2_value'],
  AT_FLOAT: ['ATTR_ID_FLOAT', 'float_value'],
  AT_FLOAT2: ['ATTR_ID_FLOAT2', 'float2_value'],
  AT_FLOAT3: ['ATTR_ID_FLOAT3', 'float3_value'],
  AT_FLOAT4: ['ATTR_ID_FLOAT4', 'float4_value'],
  AT_STRING: ['ATTR_ID_STRING', 'string_value'],
  AT_FILENAME: ['ATTR_ID_STRING', 'string_value'],
};

/** Reads the A_VALUE of each value node `{ref, type}`: `{attrType, data}` or null each. */
async function readValues(holders) {
  const types = [...new Set(holders.map((h) => h.type).filter((t) => !valueAttrCache.has(t)))];
  const sample = types.map((type) => holders.find((h) => h.type === type));
  const infos = await callMany(sample.map((h) => ({ service: 'ApiItem', method: 'attrInfo', params: { objectPtr: h.ref, id: VALUE_ATTRIBUTE } })));
  types.forEach((type, i) => valueAttrCache.set(type, infos[i].ok ? String(infos[i].data.result?.type ?? '') : ''));
  const readable = holders.map((h) => ({ h, kind: ATTRIBUTE_KINDS[valueAttrCache.get(h.type)] }));
  const answers = await callMany(readable.filter((r) => r.kind).map(({ h, kind }) => ({
    service: 'ApiItem',
    method: 'getValueByAttrID',
    params: { item_ref: h.ref, attribute_id: VALUE_ATTRIBUTE, expected_type: kind[0] },
  })));
  let k = 0;
  return readable.map(({ h, kind }) => {
    if (!kind) return null;
    const answer = answers[k++];
    if (!answer.ok) return null;
    return { ref: h.ref, attrType: valueAttrCache.get(h.type), data: field(answer.data, kind[1]) };
  });
}

/** Writes a value node's A_VALUE; `data` in the JSON of its attribute type. */
export function setValue(valueRef, attrType, data) {
  const kind = ATTRIBUTE_KINDS[attrType];
  if (!kind) return Promise.reject(new ApiError(`values of type ${attrType || 'unknown'} cannot be edited here`));
  return call('ApiItem', 'setValueByAttrID', { item_ref: valueRef, attribute_id: VALUE_ATTRIBUTE, evaluate: true, [kind[1]]: data });
}

export const items = {
  name: async (ref) => String((await call('ApiItem', 'name', obj(ref))).result ?? ''),
  rename: (ref, name) => call('ApiItem', 'setName', { objectPtr: ref, name }),
  destroy: (ref) => call('ApiItem', 'destroy', obj(ref)),
};

/**
 * The non-value nodes and graphs linked into a node's pins, as Octane's outliner lists them
 * under the node: `[{pinLabel, ref, name, isGraph, nodeType}]`.
 */
export async function linkedInputs(nodeRef) {
  const node = await readNode(nodeRef);
  return node.pins
    .filter((pin) => pin.linked && !pin.linked.isValueNode)
    .map((pin) => ({
      pinLabel: pin.info.staticLabel || pin.info.staticName || `pin ${pin.index}`,
      ref: pin.linked.ref,
      name: pin.linked.name,
      isGraph: pin.linked.isGraph,
      nodeType: pin.linked.type,
    }));
}
