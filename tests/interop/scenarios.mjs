// Call scenarios shared by the Node tests (@connectrpc/connect-node) and the browser page
// (@connectrpc/connect-web, bundled by esbuild): each takes clients made with
// `createClient` over some transport, checks what the server answered, throws a clear
// Error on any mismatch, and returns a summary for the caller to check further.
//
// Browser-safe: imports nothing from Node.

import { ConnectError, Code, createClient } from '@connectrpc/connect';

/** Full names of the services the scenarios call. */
const SERVICES = {
  livelink: 'livelinkapi.LiveLinkService',
  engine: 'octaneapi.ApiRenderEngineService',
  callbacks: 'octaneapi.StreamCallbackService',
  projectManager: 'octaneapi.ApiProjectManagerService',
  nodeGraph: 'octaneapi.ApiNodeGraphService',
  itemArray: 'octaneapi.ApiItemArrayService',
  item: 'octaneapi.ApiItemService',
};

/** ObjectRef.ObjectType.ApiItem: the type a client sends with a plain item handle. */
const OBJECT_TYPE_API_ITEM = 16;
/** A handle the reference server never hands out. */
export const BAD_HANDLE = 987654321n;

function check(condition, what) {
  if (!condition) throw new Error(what);
}

/** One Connect client per service of `registry`, all over `transport`. */
export function makeClients(registry, transport) {
  const clients = {};
  for (const [key, name] of Object.entries(SERVICES)) {
    const service = registry.getService(name);
    check(service, `service ${name} is not in the descriptor set`);
    clients[key] = createClient(service, transport);
  }
  return clients;
}

/** Clients for the test-only services of proto-missing/ (methods no server has). */
export function makeMissingClients(registry, transport) {
  const known = registry.getService('livelinkapi.LiveLinkService');
  const unknown = registry.getService('octaneweb.interop.NoSuchService');
  check(known && unknown, 'proto-missing services are not in the descriptor set');
  return { unknownMethod: createClient(known, transport), unknownService: createClient(unknown, transport) };
}

function sameVec(actual, expected, what) {
  check(actual, `${what}: missing`);
  check(
    actual.x === expected.x && actual.y === expected.y && actual.z === expected.z,
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify({ x: actual.x, y: actual.y, z: actual.z })}`,
  );
}

function oneofValue(field, expectedCase, what) {
  check(field && field.case === expectedCase, `${what}: expected oneof case ${expectedCase}, got ${field && field.case}`);
  return field.value;
}

/**
 * SetCamera with `camera` (position, target, fov), GetCamera, compare; then a partial
 * SetCamera (fov only) must leave position and target alone. Returns the final camera.
 */
export async function cameraRoundTrip(clients, camera, options = {}) {
  await clients.livelink.setCamera(
    {
      posSet: { case: 'position', value: camera.position },
      targetSet: { case: 'target', value: camera.target },
      fovSet: { case: 'fov', value: camera.fov },
    },
    options,
  );
  const read = await clients.livelink.getCamera({}, options);
  sameVec(oneofValue(read.posSet, 'position', 'GetCamera position'), camera.position, 'GetCamera position');
  sameVec(oneofValue(read.targetSet, 'target', 'GetCamera target'), camera.target, 'GetCamera target');
  check(oneofValue(read.fovSet, 'fov', 'GetCamera fov') === camera.fov, `GetCamera fov: expected ${camera.fov}, got ${read.fovSet.value}`);

  const partialFov = camera.fov + 1.5;
  await clients.livelink.setCamera({ fovSet: { case: 'fov', value: partialFov } }, options);
  const after = await clients.livelink.getCamera({}, options);
  sameVec(oneofValue(after.posSet, 'position', 'after partial SetCamera'), camera.position, 'position after a fov-only SetCamera');
  check(after.fovSet.value === partialFov, `fov after partial SetCamera: expected ${partialFov}, got ${after.fovSet.value}`);
  const { x, y, z } = after.posSet.value;
  return { position: { x, y, z }, fov: after.fovSet.value };
}

/**
 * Walks the scene as a client of the Octane API does: root graph, its owned items, and each
 * item's name, isGraph and outType. Returns the items in order.
 */
export async function sceneWalk(clients, options = {}) {
  const root = (await clients.projectManager.rootNodeGraph({}, options)).result;
  check(root && root.handle > 0n, `rootNodeGraph: expected a handle, got ${root && root.handle}`);
  const list = (await clients.nodeGraph.getOwnedItems({ objectPtr: root }, options)).list;
  check(list && list.handle > 0n, 'getOwnedItems: expected an item array');
  const size = (await clients.itemArray.size({ objectPtr: list }, options)).result;
  check(size > 0, `ApiItemArray.size: expected items, got ${size}`);
  const items = [];
  for (let index = 0; index < size; index += 1) {
    const item = (await clients.itemArray.get({ objectPtr: list, index }, options)).result;
    check(item && item.handle > 0n, `ApiItemArray.get(${index}): expected a handle`);
    const name = (await clients.item.name({ objectPtr: item }, options)).result;
    const isGraph = (await clients.item.isGraph({ objectPtr: item }, options)).result;
    const outType = (await clients.item.outType({ objectPtr: item }, options)).result;
    check(typeof name === 'string' && name.length > 0, `ApiItem.name(${item.handle}): empty`);
    check(typeof isGraph === 'boolean', `ApiItem.isGraph(${item.handle}): not a bool`);
    check(Number.isInteger(outType) && outType >= 0 && outType <= 20, `ApiItem.outType(${item.handle}): ${outType}`);
    items.push({ handle: item.handle.toString(), name, isGraph, outType });
  }
  return items;
}

/** The gRPC/Connect code of a failed call (throws if the call did not fail). */
export async function failureOf(call) {
  try {
    await call();
  } catch (error) {
    const connectError = ConnectError.from(error);
    return { code: connectError.code, codeName: Code[connectError.code], message: connectError.rawMessage };
  }
  throw new Error('the call succeeded, but it should have failed');
}

/**
 * Whether a grabbed sample count ever grew from one grab to the next (a restart may land
 * between grabs, so the first count is not a floor).
 */
export function grewSomewhere(spp) {
  return spp.some((value, i) => i > 0 && value > spp[i - 1]);
}

/** Calls an item method with a handle the server never gave out. */
export function badHandle(clients, options = {}) {
  return failureOf(() => clients.item.name({ objectPtr: { handle: BAD_HANDLE, type: OBJECT_TYPE_API_ITEM } }, options));
}

/**
 * Registers the new-image callback, opens callbackChannel and, for each newImage
 * notification, grabs and releases the render result, until `minImages` notifications came
 * and the grabbed sample count grew. Returns what it saw.
 */
export async function callbackStream(clients, { userData, minImages = 3, timeoutMs = 30000, restart = true } = {}) {
  const registered = await clients.engine.setOnNewImageCallback({
    callback: { callbackSource: 'octaneweb-interop', callbackId: 0 },
    userData: BigInt(userData),
  });
  check(registered.callbackId > 0, `setOnNewImageCallback: expected a callback id, got ${registered.callbackId}`);
  if (restart) await clients.engine.restartRendering({});

  const seen = { notifications: 0, newImages: 0, userDataSeen: false, spp: [], sizes: [] };
  // Bounded by our own timer rather than `timeoutMs`: connect's deadline timer outlives a
  // stream the caller leaves early and would keep Node running until it fires.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`callbackChannel: not done within ${timeoutMs} ms`)), timeoutMs);
  const stream = clients.callbacks.callbackChannel({}, { signal: abort.signal });
  try {
    for await (const message of stream) {
      seen.notifications += 1;
      if (!message.payload || message.payload.case !== 'newImage') continue;
      seen.newImages += 1;
      if (message.payload.value.userData === BigInt(userData)) seen.userDataSeen = true;
      const grabbed = await clients.engine.grabRenderResult({});
      if (grabbed.result) {
        const image = grabbed.renderImages && grabbed.renderImages.data[0];
        check(image, 'grabRenderResult: result true but no image');
        check(image.buffer && image.buffer.data.length === image.size.x * image.size.y * 4, 'grabRenderResult: buffer size does not match the image size');
        seen.spp.push(image.tonemappedSamplesPerPixel);
        seen.sizes.push([image.size.x, image.size.y]);
        await clients.engine.releaseRenderResult({});
      }
      const grew = grewSomewhere(seen.spp);
      if (seen.newImages >= minImages && grew && seen.userDataSeen) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  check(seen.newImages >= minImages, `callbackChannel: expected ${minImages} newImage notifications, got ${seen.newImages}`);
  check(seen.userDataSeen, `callbackChannel: no notification carried user data ${userData}`);
  check(grewSomewhere(seen.spp), `grabRenderResult: samples per pixel never grew between grabs: ${seen.spp.join(', ')}`);
  return seen;
}

/** callbackChannel with a short deadline: messages until the deadline, then DeadlineExceeded. */
export async function streamDeadline(clients, timeoutMs = 400) {
  let messages = 0;
  const failure = await failureOf(async () => {
    for await (const _ of clients.callbacks.callbackChannel({}, { timeoutMs })) messages += 1;
  });
  return { ...failure, messages };
}
