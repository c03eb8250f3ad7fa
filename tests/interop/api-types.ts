// Uses every export of web/js/api.js through its declarations (web/js/api.d.ts), as a
// TypeScript page would. rpc-types.test.mjs type-checks it with `tsc --strict`; it needs a
// page (location, localStorage) to run, so it is only checked, not run.

import {
  ApiError,
  MAX_BATCH_CALLS,
  baseUrl,
  batch,
  call,
  callRaw,
  getJson,
  methodPath,
  request,
  storeServer,
  storedServer,
  url,
  wsUrl,
  type BatchCall,
  type CallResult,
  type RequestOptions,
} from '../../web/js/api.js';

interface CameraState {
  fov?: number;
}

export async function useApi(): Promise<string[]> {
  const seen: string[] = [storedServer(), baseUrl(), url('health'), wsUrl('ws'), methodPath('LiveLink', 'GetCamera')];
  storeServer('');
  const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' }, timeoutMs: 1000 };
  const response: Response = await request('health', options);
  seen.push(String(response.status));
  const camera = await call<CameraState>('LiveLink', 'GetCamera', {});
  seen.push(String(camera.fov ?? 0));
  const raw: CallResult<CameraState> = await callRaw<CameraState>('LiveLink', 'GetCamera');
  if (raw.ok) seen.push(String(raw.data.fov));
  else seen.push(`${raw.error.code} ${raw.error.status} ${raw.error.unreachable}`);
  const calls: BatchCall[] = [{ method: 'LiveLink/GetCamera' }, { service: 'ApiItem', method: 'name', params: {}, id: 'a', timeout_ms: 50 }];
  for (const result of await batch(calls)) seen.push(result.ok ? JSON.stringify(result.data) : result.error.message);
  const schema = await getJson<{ services: unknown[] }>('schema');
  seen.push(String(schema.services.length + MAX_BATCH_CALLS));
  try {
    await call('NoSuch', 'method');
  } catch (error) {
    if (error instanceof ApiError) seen.push(`${error.name} ${error.code} ${String(error.body)}`);
  }
  return seen;
}

// What the declarations must refuse (each line must stay an error under --strict).
export function refusedApi(): void {
  // @ts-expect-error: there is no such function.
  void callJson('LiveLink', 'GetCamera');
  // @ts-expect-error: a batch call names its method.
  void batch([{ service: 'LiveLink' }]);
  // @ts-expect-error: unreachable is read-only.
  new ApiError('x').unreachable = true;
  // @ts-expect-error: MAX_BATCH_CALLS is a constant.
  MAX_BATCH_CALLS = 1;
}
