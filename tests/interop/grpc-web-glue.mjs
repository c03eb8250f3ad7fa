// Glue between Google's grpc-web client and our run-time schema, shared by the Node test
// (grpc-web.test.mjs, over the xhr2 polyfill) and the browser page (native XMLHttpRequest):
// grpc-web expects generated message classes with serializeBinary / deserializeBinary; here
// they are thin wrappers over @bufbuild/protobuf's toBinary / fromBinary with descriptors from
// the registry. Browser-safe: imports nothing from Node.

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { GrpcWebClientBase, MethodDescriptor, MethodType, StatusCode } from 'grpc-web';

export { StatusCode };

/** A class in the shape grpc-web expects of generated messages, backed by `desc`. */
function messageClass(desc) {
  return class {
    constructor(init = {}) {
      this.value = create(desc, init);
    }
    serializeBinary() {
      return toBinary(desc, this.value);
    }
    static deserializeBinary(bytes) {
      const instance = new this();
      instance.value = fromBinary(desc, bytes);
      return instance;
    }
  };
}

/**
 * A grpc-web caller for `baseUrl` in `format` ('text' or 'binary') whose methods are looked
 * up in `registry`. `missingRegistry` (optional) supplies methods no server has.
 */
export function grpcWebCaller(registry, baseUrl, format) {
  const client = new GrpcWebClientBase({ format });
  const classes = new Map();
  const classFor = (desc) => {
    if (!classes.has(desc.typeName)) classes.set(desc.typeName, messageClass(desc));
    return classes.get(desc.typeName);
  };
  const base = baseUrl.replace(/\/$/, '');

  const describe = (serviceName, methodName) => {
    const service = registry.getService(serviceName);
    const method = service && service.methods.find((m) => m.name === methodName);
    if (!method) throw new Error(`${serviceName}/${methodName} is not in the descriptor set`);
    const Request = classFor(method.input);
    const Response = classFor(method.output);
    const kind = method.methodKind === 'server_streaming' ? MethodType.SERVER_STREAMING : MethodType.UNARY;
    const path = `/${serviceName}/${methodName}`;
    return { path, Request, descriptor: new MethodDescriptor(path, kind, Request, Response, (request) => request.serializeBinary(), Response.deserializeBinary.bind(Response)) };
  };

  /** A unary call; resolves to the response message (a @bufbuild/protobuf message). */
  const unary = (serviceName, methodName, init = {}, metadata = {}) => {
    const method = describe(serviceName, methodName);
    return client.unaryCall(base + method.path, new method.Request(init), metadata, method.descriptor).then((response) => response.value);
  };

  /** A unary call to a path no schema has, with Empty in and out. */
  const unaryMissing = (path) => {
    const Empty = classFor(registry.getMessage('google.protobuf.Empty'));
    const descriptor = new MethodDescriptor(path, MethodType.UNARY, Empty, Empty, (request) => request.serializeBinary(), Empty.deserializeBinary.bind(Empty));
    return client.unaryCall(base + path, new Empty(), {}, descriptor);
  };

  /**
   * A server stream bounded by a deadline (`deadlineMs` from now); collects messages until
   * `enough(messages)` says so (then cancels) or the stream ends. Resolves to
   * `{messages, ended, elapsedMs}` with ended 'enough', 'deadline' or 'end'; rejects on other
   * errors. `elapsedMs` tells whether messages came as they were sent (well before the
   * deadline) or only when the response ended.
   */
  const stream = (serviceName, methodName, init, { deadlineMs, enough }) => {
    const method = describe(serviceName, methodName);
    return new Promise((resolve, reject) => {
      const messages = [];
      const started = Date.now();
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        fn({ ...value, elapsedMs: Date.now() - started });
      };
      const call = client.serverStreaming(base + method.path, new method.Request(init), { deadline: String(Date.now() + deadlineMs) }, method.descriptor);
      call.on('data', (response) => {
        messages.push(response.value);
        if (enough(messages)) {
          call.cancel();
          settle(resolve, { messages, ended: 'enough' });
        }
      });
      call.on('error', (error) => {
        if (error.code === StatusCode.DEADLINE_EXCEEDED) settle(resolve, { messages, ended: 'deadline' });
        else {
          settled = true;
          reject(Object.assign(new Error(`${method.path}: code ${error.code}: ${error.message}`), { code: error.code }));
        }
      });
      call.on('end', () => settle(resolve, { messages, ended: 'end' }));
    });
  };

  return { unary, unaryMissing, stream };
}

const LIVELINK = 'livelinkapi.LiveLinkService';
const RENDER_ENGINE = 'octaneapi.ApiRenderEngineService';
const CALLBACKS = 'octaneapi.StreamCallbackService';

function check(condition, what) {
  if (!condition) throw new Error(what);
}

/** SetCamera then GetCamera through grpc-web; throws on a mismatch, returns what was read. */
export async function grpcWebCamera(caller, camera) {
  await caller.unary(LIVELINK, 'SetCamera', {
    posSet: { case: 'position', value: camera.position },
    targetSet: { case: 'target', value: camera.target },
    fovSet: { case: 'fov', value: camera.fov },
  });
  const read = await caller.unary(LIVELINK, 'GetCamera');
  const pos = read.posSet.case === 'position' ? read.posSet.value : null;
  check(pos && pos.x === camera.position.x && pos.y === camera.position.y && pos.z === camera.position.z, `GetCamera position ${JSON.stringify(pos)}`);
  const target = read.targetSet.value;
  check(target && target.x === camera.target.x && target.y === camera.target.y && target.z === camera.target.z, `GetCamera target ${JSON.stringify(target)}`);
  check(read.fovSet.value === camera.fov, `GetCamera fov ${read.fovSet.value}`);
  return { position: { x: pos.x, y: pos.y, z: pos.z }, fov: read.fovSet.value };
}

/** The failure of a grpc-web call: `{code, message}`; throws if it succeeded. */
export async function grpcWebFailure(call) {
  try {
    await call();
  } catch (error) {
    return { code: error.code, message: error.message };
  }
  throw new Error('the call succeeded, but it should have failed');
}

/**
 * Registers the callback, restarts the render, reads callbackChannel for up to `deadlineMs`
 * until 3 newImage notifications came, then grabs images until samples per pixel grew.
 */
export async function grpcWebCallbacks(caller, userData, deadlineMs = 2500) {
  const registered = await caller.unary(RENDER_ENGINE, 'setOnNewImageCallback', {
    callback: { callbackSource: 'octaneweb-interop-grpc-web', callbackId: 0 },
    userData: BigInt(userData),
  });
  check(registered.callbackId > 0, `setOnNewImageCallback id ${registered.callbackId}`);
  await caller.unary(RENDER_ENGINE, 'restartRendering');
  const newImages = (messages) => messages.filter((m) => m.payload && m.payload.case === 'newImage');
  const outcome = await caller.stream(CALLBACKS, 'callbackChannel', {}, { deadlineMs, enough: (messages) => newImages(messages).length >= 3 });
  const images = newImages(outcome.messages);
  check(images.length >= 3, `3 newImage notifications, got ${images.length} (stream ended: ${outcome.ended})`);
  check(
    images.some((m) => m.payload.value.userData === BigInt(userData)),
    `no notification carried user data ${userData}`,
  );

  const grab = async () => {
    const grabbed = await caller.unary(RENDER_ENGINE, 'grabRenderResult');
    await caller.unary(RENDER_ENGINE, 'releaseRenderResult');
    return grabbed.result ? grabbed.renderImages.data[0] : null;
  };
  let previous = await grab();
  check(previous, 'grabRenderResult: no image after notifications');
  check(previous.buffer.data.length === previous.size.x * previous.size.y * 4, 'grabRenderResult: buffer size does not match the image size');
  const size = [previous.size.x, previous.size.y];
  const started = Date.now();
  // Grabs until the sample count grows from one grab to the next.
  for (;;) {
    const next = await grab();
    if (next && next.tonemappedSamplesPerPixel > previous.tonemappedSamplesPerPixel) {
      return { notifications: outcome.messages.length, newImages: images.length, ended: outcome.ended, streamMs: outcome.elapsedMs, size, spp: [previous.tonemappedSamplesPerPixel, next.tonemappedSamplesPerPixel] };
    }
    check(Date.now() - started < 10000, `samples per pixel stayed at ${previous.tonemappedSamplesPerPixel}`);
    if (next) previous = next;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
