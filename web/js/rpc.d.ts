// Type declarations for rpc.js: gRPC calls of all four kinds over the gateway's `/ws`
// (docs/websocket.md). Messages are proto3 JSON values; give a call your own request and
// response types (e.g. `rpc.unary<Camera>('LiveLink/GetCamera')`) or take the JSON defaults.

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A message as proto3 JSON, when no type of your own is given. */
export type JsonMessage = { [field: string]: JsonValue };

/** The upper-case gRPC status code names the gateway sends. */
export type RpcCode =
  | 'OK'
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** Metadata as the gateway writes it: text values, base64 for `-bin` keys, repeats joined with ", ". */
export type Metadata = Record<string, string>;

/**
 * One entry of `grpc-status-details-bin`, as proto3 JSON `Any`: the fields of the message
 * when the gateway's schema knows `@type`, else `value` (base64).
 */
export interface RpcDetail {
  '@type': string;
  [field: string]: JsonValue;
}

/** Options every call takes. */
export interface CallOptions {
  /** Request metadata (gRPC headers); keys ending in `-bin` take base64 values. */
  metadata?: Metadata;
  /** The call's deadline in milliseconds; when it passes the call ends DEADLINE_EXCEEDED. */
  timeoutMs?: number;
  /** Aborting it cancels the call. */
  signal?: AbortSignal;
  /** Called once, when the response headers arrive. */
  onHeaders?: (headers: Metadata) => void;
  /** Field names of the response messages (default: the gateway's, proto names unless set). */
  jsonNames?: 'proto' | 'camel';
  /** Whether response messages include fields at their default values (default: the gateway's). */
  jsonDefaults?: 'emit' | 'omit';
}

/** How a call ended OK: its last response message (if any), headers and trailers. */
export interface RpcCallResult<Res = JsonMessage> {
  message: Res | undefined;
  headers: Metadata;
  trailers: Metadata;
}

/** A failed call. */
export class RpcError extends Error {
  constructor(code: RpcCode, message?: string, extra?: { details?: RpcDetail[]; trailers?: Metadata; headers?: Metadata });
  readonly name: 'RpcError';
  /** The gRPC status code name. */
  code: RpcCode;
  details: RpcDetail[];
  trailers: Metadata;
  headers: Metadata;
}

/** One call on the socket, as returned by `open` and carried as `call` by the other shapes. */
export interface RpcCall<Req extends object = JsonMessage, Res = JsonMessage> {
  /** The call's id on the socket. */
  readonly id: number;
  /** The response headers (empty until they arrive). */
  readonly headers: Metadata;
  /** The trailers, once the call ended OK. */
  readonly trailers?: Metadata;
  readonly ended: boolean;
  readonly halfClosed: boolean;
  /** Resolves when the call ends OK, rejects with its RpcError. */
  readonly result: Promise<RpcCallResult<Res>>;
  /** Sends one more request message (client and bidi streams); throws RpcError once ended or half-closed. */
  send(message: Req): void;
  /** Half-closes: no more request messages. */
  end(): void;
  cancel(): void;
}

/** A server stream's messages; leaving a `for await` loop early cancels the call. */
export interface ServerStream<Res = JsonMessage> extends AsyncIterableIterator<Res> {
  cancel(): void;
  call: RpcCall<JsonMessage, Res>;
}

/** A client stream: `send` messages, `end` them, await `response`. */
export interface ClientStream<Req extends object = JsonMessage, Res = JsonMessage> {
  send(message: Req): void;
  end(): void;
  cancel(): void;
  call: RpcCall<Req, Res>;
  /** The one response message, once the server answered. */
  response: Promise<Res>;
}

/** A bidi stream: `send`, `end` (half-close), `cancel`, and `for await` over the answers. */
export interface BidiStream<Req extends object = JsonMessage, Res = JsonMessage> extends AsyncIterableIterator<Res> {
  send(message: Req): void;
  end(): void;
  cancel(): void;
  call: RpcCall<Req, Res>;
  /** Resolves when the call ends OK, rejects with its RpcError. */
  done: Promise<RpcCallResult<Res>>;
}

/** What RpcClient's events carry. */
export interface RpcClientEventMap {
  open: Event;
  close: CustomEvent<{ code: number; reason: string }>;
  'protocol-error': CustomEvent<string>;
}

/** A client of one gateway's `/ws`; one socket carries all its calls. */
export class RpcClient extends EventTarget {
  /** `url`: the gateway's /ws (default: the one next to the page). */
  constructor(url?: string);
  readonly url: string;
  /** Frames sent and received, and how often the socket opened. */
  readonly stats: { opened: number; sent: number; received: number };
  /** True while the socket is open. */
  readonly connected: boolean;
  /** Resolves once the socket is open; rejects with an UNAVAILABLE RpcError. */
  connect(): Promise<void>;
  /** Closes the socket; running calls fail with UNAVAILABLE. */
  close(): void;
  /** One unary call; resolves to the response message. */
  unary<Res = JsonMessage, Req extends object = JsonMessage>(method: string, message?: Req, options?: CallOptions): Promise<Res>;
  serverStream<Res = JsonMessage, Req extends object = JsonMessage>(method: string, message?: Req, options?: CallOptions): ServerStream<Res>;
  clientStream<Req extends object = JsonMessage, Res = JsonMessage>(method: string, options?: CallOptions): ClientStream<Req, Res>;
  bidi<Req extends object = JsonMessage, Res = JsonMessage>(method: string, options?: CallOptions): BidiStream<Req, Res>;
  /** Opens a call of any kind; `message` is the first (for unary and server streams the only) request. */
  open<Req extends object = JsonMessage, Res = JsonMessage>(method: string, message?: Req, options?: CallOptions): RpcCall<Req, Res>;
  addEventListener<K extends keyof RpcClientEventMap>(type: K, listener: (event: RpcClientEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof RpcClientEventMap>(type: K, listener: (event: RpcClientEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** The page's shared client (created on first use, for `url` or the page's own gateway). */
export function sharedClient(url?: string): RpcClient;
