// Type declarations for api.js: where the gateway is, JSON calls to `POST /{Service}/{method}`
// (the original proxy's `{"success", "data"}` answers) and `POST /batch`.

import type { JsonMessage, JsonValue } from './rpc.js';

/** A failed call: `status` is the HTTP status (0 = no answer), `code` the gRPC code name if any. */
export class ApiError extends Error {
  constructor(message: string, extra?: { status?: number; code?: string; body?: unknown });
  readonly name: 'ApiError';
  status: number;
  code: string;
  /** The error answer's body, parsed as JSON when it was. */
  body: unknown;
  /** True when the gateway itself could not be reached (as opposed to an error answer). */
  readonly unreachable: boolean;
}

/** The server URL stored in Settings ('' = none). */
export function storedServer(): string;
/** Stores (or with '' clears) the server URL; throws on a malformed URL. */
export function storeServer(text: string): void;
/** The gateway's base URL, ending in "/": ?server=, then Settings, then the page's own location. */
export function baseUrl(): string;
/** The absolute http(s) URL of a gateway path ("health", "render/frame.png", ...). */
export function url(path: string): string;
/** The absolute ws(s) URL of a gateway path. */
export function wsUrl(path: string): string;
/** The path of the JSON call route for a method. */
export function methodPath(service: string, method: string): string;

export interface RequestOptions {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit | null;
  /** Aborting it cancels the request (an ApiError with code CANCELLED). */
  signal?: AbortSignal;
  /** How long the answer's headers may take (default 30 s). */
  timeoutMs?: number;
}

/** fetch() of a gateway path; network failures and timeouts reject with ApiError (status 0). */
export function request(path: string, options?: RequestOptions): Promise<Response>;

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Calls a method through the JSON route; resolves to the response message. */
export function call<Res = JsonMessage>(service: string, method: string, message?: object | string, options?: CallOptions): Promise<Res>;

/** Everything about one JSON-route answer. */
export type CallResult<Res = JsonMessage> =
  | { ok: true; data: Res; status: number; durationMs: number; raw: unknown }
  | { ok: false; error: ApiError; status: number; durationMs: number; raw: unknown };

/** Like call() but never rejects. */
export function callRaw<Res = JsonMessage>(service: string, method: string, message?: object | string, options?: CallOptions): Promise<CallResult<Res>>;

/** Most calls sent in one `POST /batch` (the gateway takes up to 1000). */
export const MAX_BATCH_CALLS: number;

/** One call of a batch, in the original proxy's form. */
export interface BatchCall {
  service?: string;
  method: string;
  params?: object;
  id?: JsonValue;
  timeout_ms?: number;
}

export type BatchResult<Res = JsonMessage> = { ok: true; data: Res } | { ok: false; error: ApiError };

/** Runs unary calls in as few `POST /batch` round trips as it can; one result per call, in order. */
export function batch<Res = JsonMessage>(calls: BatchCall[], options?: CallOptions): Promise<BatchResult<Res>[]>;

/** GETs a JSON document ("schema", "health"); rejects with ApiError. */
export function getJson<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
