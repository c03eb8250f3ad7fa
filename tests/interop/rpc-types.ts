// Uses every export of web/js/rpc.js through its declarations (web/js/rpc.d.ts), with the
// types a TypeScript user would write. rpc-types.test.mjs type-checks this file with
// `tsc --strict` and then runs it against the real gateway, so a declaration that drifts
// from rpc.js fails one or the other.

import {
  RpcClient,
  RpcError,
  sharedClient,
  type BidiStream,
  type CallOptions,
  type ClientStream,
  type JsonMessage,
  type Metadata,
  type RpcCall,
  type RpcCallResult,
  type RpcCode,
  type RpcDetail,
  type ServerStream,
} from '../../web/js/rpc.js';

interface Vec3 {
  x: number;
  y: number;
  z: number;
}

/** livelinkapi.CameraState as the gateway writes it (proto names, defaults included). */
interface CameraState {
  position?: Vec3;
  target?: Vec3;
  up?: Vec3;
  fov?: number;
}

interface StreamStatus {
  message: string;
}

/** What each step saw, for the test to check. */
export interface Report {
  fov: number;
  openHeaders: Metadata;
  openResult: RpcCallResult<CameraState>;
  streamed: string;
  bidiAnswers: string[];
  bidiTrailers: Metadata;
  deadline: RpcCode | null;
  notFound: { code: RpcCode; details: RpcDetail[]; trailers: Metadata; headers: Metadata } | null;
  shared: boolean;
  events: string[];
  stats: { opened: number; sent: number; received: number };
  made: string;
}

export async function exercise(url: string): Promise<Report> {
  const rpc = new RpcClient(url);
  const events: string[] = [];
  rpc.addEventListener('open', () => events.push('open'));
  rpc.addEventListener('close', (event) => events.push(`close ${event.detail.code}`));
  rpc.addEventListener('protocol-error', (event) => events.push(`protocol-error ${event.detail}`));
  await rpc.connect();
  const connected: boolean = rpc.connected;
  if (!connected || rpc.url !== url) throw new Error('not connected');

  // Unary, with a response type of our own.
  const camera = await rpc.unary<CameraState>('LiveLink/GetCamera', {}, { timeoutMs: 5000, metadata: { 'x-test': 'types' } });
  const fov: number = camera.fov ?? -1;
  // A deadline longer than setTimeout can wait (2^31 - 1 ms) must not fire at once.
  const far = await rpc.unary<CameraState>('LiveLink/GetCamera', {}, { timeoutMs: 3e9, jsonNames: 'camel', jsonDefaults: 'omit' });
  if (far.fov !== camera.fov) throw new Error('a far deadline changed the answer');

  // The general form: open() with onHeaders, and the call's result.
  let openHeaders: Metadata = {};
  const options: CallOptions = { onHeaders: (headers) => { openHeaders = headers; } };
  const call: RpcCall<JsonMessage, CameraState> = rpc.open<JsonMessage, CameraState>('LiveLink/GetCamera', {}, options);
  const openResult = await call.result;
  const ended: boolean = call.ended && !call.halfClosed;
  if (!ended) throw new Error('the unary call should have ended without a half-close from here');

  // Client stream: send, end, await the one response.
  const upload: ClientStream<CameraState, StreamStatus> = rpc.clientStream<CameraState, StreamStatus>('LiveLink/StreamCamera');
  upload.send({ fov: 41 });
  upload.send({ fov: camera.fov ?? 40 });
  upload.end();
  const status: StreamStatus = await upload.response;

  // The bidi shape over the same method: iterate the answers, then read the trailers.
  const chat: BidiStream<CameraState, StreamStatus> = rpc.bidi<CameraState, StreamStatus>('LiveLink/StreamCamera');
  chat.send({ fov: camera.fov ?? 40 });
  chat.end();
  const bidiAnswers: string[] = [];
  for await (const answer of chat) bidiAnswers.push(answer.message);
  const { trailers: bidiTrailers } = await chat.done;

  // Server stream with a deadline: the callback channel runs until the deadline passes.
  let deadline: RpcCode | null = null;
  const events$: ServerStream<JsonMessage> = rpc.serverStream('StreamCallback/callbackChannel', {}, { timeoutMs: 200 });
  try {
    for await (const event of events$) {
      if (typeof event !== 'object') throw new Error('not a message');
    }
  } catch (error) {
    if (error instanceof RpcError) deadline = error.code;
    else throw error;
  }
  events$.cancel();

  // A failure: the error's code, details, trailers and headers are typed.
  let notFound: Report['notFound'] = null;
  try {
    await rpc.unary('NoSuchService/NoSuchMethod');
  } catch (error) {
    if (!(error instanceof RpcError)) throw error;
    notFound = { code: error.code, details: error.details, trailers: error.trailers, headers: error.headers };
  }

  // A call cancelled by its signal.
  const controller = new AbortController();
  const cancelled = rpc.serverStream('StreamCallback/callbackChannel', {}, { signal: controller.signal });
  controller.abort();
  await cancelled.next().catch((error: unknown) => {
    if (!(error instanceof RpcError) || error.code !== 'CANCELLED') throw error;
  });

  const shared = sharedClient(url) === sharedClient();
  const made = new RpcError('NOT_FOUND', 'made here', { details: [{ '@type': 'type.googleapis.com/x.Y', value: '' }] });
  const closed = new Promise<void>((resolve) => rpc.addEventListener('close', () => resolve(), { once: true }));
  rpc.close();
  await closed;
  return {
    fov,
    openHeaders,
    openResult,
    streamed: status.message,
    bidiAnswers,
    bidiTrailers,
    deadline,
    notFound,
    shared,
    events,
    stats: rpc.stats,
    made: `${made.name} ${made.code} ${made.message} ${made.details.length}`,
  };
}

// What the declarations must refuse. Each line is an error under --strict; if one stops
// being an error (a declaration grew too loose, or a name came back), tsc fails here.
export function refused(rpc: RpcClient): void {
  // @ts-expect-error: there is no such method.
  rpc.call('LiveLink/GetCamera');
  // @ts-expect-error: the method is a string.
  void rpc.unary(42);
  // @ts-expect-error: not a gRPC code name.
  void new RpcError('NOPE');
  // @ts-expect-error: metadata values are strings.
  void rpc.unary('LiveLink/GetCamera', {}, { metadata: { 'x-n': 1 } });
  // @ts-expect-error: timeoutMs is a number of milliseconds.
  void rpc.unary('LiveLink/GetCamera', {}, { timeoutMs: '1s' });
  // @ts-expect-error: field names are proto or camel.
  void rpc.unary('LiveLink/GetCamera', {}, { jsonNames: 'snake' });
  const upload = rpc.clientStream<CameraState, StreamStatus>('LiveLink/StreamCamera');
  // @ts-expect-error: the request type is CameraState.
  upload.send({ fov: 'wide' });
  // @ts-expect-error: a client stream has no iterator.
  void upload.next();
  // @ts-expect-error: stats are read-only.
  rpc.stats = { opened: 0, sent: 0, received: 0 };
}
