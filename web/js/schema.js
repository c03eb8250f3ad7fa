// What the loaded schema (GET /schema) says about the service behind the gateway.
//
// The gateway fronts any gRPC service; only Octane (or the demo render server) has what the
// viewport, the camera and the scene panel call. Asking the schema before starting them lets
// the page open on what works (the API explorer) instead of a dead viewport and a stream of
// errors. The rules mirror the gateway's: services are looked up as leniently as its JSON
// route does (`LiveLink` finds `livelinkapi.LiveLinkService`), and the render stream needs
// what its frame hub needs (crates/octane/src/hub/plan.rs).

const RENDER_ENGINE = 'octaneapi.ApiRenderEngineService';
const CALLBACK_SERVICE = 'octaneapi.StreamCallbackService';
const STREAM_MESSAGE = 'octaneapi.StreamCallbackRequest';
/** StreamCallbackRequest.payload's newImage field, the same number in both generations. */
const NEW_IMAGE_FIELD = 10;

/** What the camera calls (camera.js). */
const CAMERA_METHODS = [['LiveLink', 'GetCamera'], ['LiveLink', 'SetCamera']];
/** What the scene outliner calls (outliner.js). */
const SCENE_METHODS = [
  ['ApiProjectManager', 'rootNodeGraph'],
  ['ApiNodeGraph', 'getOwnedItems'],
  ['ApiItemArray', 'size'],
  ['ApiItemArray', 'get'],
  ['ApiItem', 'name'],
  ['ApiItem', 'isGraph'],
  ['ApiItem', 'outType'],
];
const MESH_METHODS = [['LiveLink', 'GetMeshes']];

function stripService(name) {
  return name.endsWith('Service') && name.length > 'Service'.length && !name.endsWith('.Service') ? name.slice(0, -'Service'.length) : null;
}

/**
 * The service `name` names, found as the gateway finds it: full name, full name without
 * "Service", bare name, bare name without "Service"; then the same ignoring case. Null when
 * none matches or several do at the first level that matches (the gateway refuses those).
 */
export function findService(schema, name) {
  const services = Array.isArray(schema?.services) ? schema.services : [];
  const wanted = String(name).trim().replace(/^\./, '');
  const exact = (a, b) => a === b;
  const caseless = (a, b) => typeof a === 'string' && a.toLowerCase() === b.toLowerCase();
  for (const same of [exact, caseless]) {
    const tiers = [
      (s) => same(s.full_name, wanted),
      (s) => same(stripService(s.full_name ?? ''), wanted),
      (s) => same(s.name, wanted),
      (s) => same(stripService(s.name ?? ''), wanted),
    ];
    for (const tier of tiers) {
      const found = services.filter(tier);
      if (found.length === 1) return found[0];
      if (found.length > 1) return null;
    }
  }
  return null;
}

/** The method `methodName` of the service `serviceName` names (see findService), or null. */
export function findMethod(schema, serviceName, methodName) {
  return findService(schema, serviceName)?.methods?.find((m) => m.name === methodName) ?? null;
}

/**
 * Checks `[service, method]` pairs; returns what is missing or refused, as
 * "Service/method" or "Service/method (refused by the gateway's policy)".
 */
function lacking(schema, pairs, find = findMethod) {
  const out = [];
  for (const [service, method] of pairs) {
    const found = find(schema, service, method);
    if (!found) out.push(`${service}/${method}`);
    else if (found.refused) out.push(`${service}/${method} (refused by the gateway's policy)`);
  }
  return out;
}

/** The frame hub names its services exactly (no lenient lookup). */
function findExact(schema, service, method) {
  const found = (schema?.services ?? []).find((s) => s.full_name === service);
  return found?.methods?.find((m) => m.name === method) ?? null;
}

/** 1 or 2: how the callback stream carries new images, as the frame hub decides; null if it cannot tell. */
function callbackGeneration(schema) {
  const stream = schema?.messages?.[STREAM_MESSAGE];
  const newImage = stream?.fields?.find((f) => f.number === NEW_IMAGE_FIELD);
  if (!newImage || newImage.kind !== 'message') return null;
  const payload = schema.messages?.[newImage.type_name];
  // A payload message /schema does not describe has no inline images we could see.
  const inline = payload?.fields?.some((f) => f.name === 'render_images' || f.name === 'renderImages');
  return inline ? 1 : 2;
}

/**
 * What the page can use behind this gateway:
 * - `render`: the render stream (setOnNewImageCallback, a server-streaming callbackChannel,
 *   and in callback generation 2 grabRenderResult and releaseRenderResult)
 * - `camera`: LiveLink GetCamera and SetCamera
 * - `scene`: the outliner's ApiProjectManager / ApiNodeGraph / ApiItemArray / ApiItem calls
 * - `meshes`: LiveLink GetMeshes
 * - `octane`: render and camera, i.e. the viewport works (hasOctaneRender)
 * - `generation`: the callback generation (1, 2) or null
 * - `missing`: every method that is absent or refused, "Service/method", for a message
 * A method the gateway's policy refuses counts as missing: calling it would only fail.
 */
export function octaneSupport(schema) {
  const generation = callbackGeneration(schema);
  const renderPairs = [[RENDER_ENGINE, 'setOnNewImageCallback'], [CALLBACK_SERVICE, 'callbackChannel']];
  if (generation !== 1) renderPairs.push([RENDER_ENGINE, 'grabRenderResult'], [RENDER_ENGINE, 'releaseRenderResult']);
  const renderMissing = lacking(schema, renderPairs, findExact);
  const channel = findExact(schema, CALLBACK_SERVICE, 'callbackChannel');
  if (channel && !channel.server_streaming) renderMissing.push(`${CALLBACK_SERVICE}/callbackChannel (not server-streaming)`);
  if (generation === null) renderMissing.push(`${STREAM_MESSAGE}.newImage (field ${NEW_IMAGE_FIELD})`);
  const cameraMissing = lacking(schema, CAMERA_METHODS);
  const sceneMissing = lacking(schema, SCENE_METHODS);
  const meshMissing = lacking(schema, MESH_METHODS);
  const render = renderMissing.length === 0;
  const camera = cameraMissing.length === 0;
  return {
    render,
    camera,
    scene: sceneMissing.length === 0,
    meshes: meshMissing.length === 0,
    octane: render && camera,
    generation,
    missing: [...renderMissing, ...cameraMissing, ...sceneMissing, ...meshMissing],
  };
}

/** True when the schema has Octane's render stream and LiveLink camera: the viewport can work. */
export function hasOctaneRender(schema) {
  return octaneSupport(schema).octane;
}
