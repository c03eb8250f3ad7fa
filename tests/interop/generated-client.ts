// A typed TypeScript client over code that protoc-gen-es (the usual generator) wrote from
// proto/octane at test time into ./generated/. generated-client.test.mjs type-checks this file
// with tsc (strict), bundles it with esbuild and runs its calls against the real gateway.

import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { ApiRenderEngineService, OnNewImageCallbackTSchema } from './generated/apirender_pb';
import { StreamCallbackService } from './generated/callbackstream_pb';
import { ObjectRef_ObjectType, ObjectRefSchema } from './generated/common_pb';
import { CameraStateSchema, LiveLinkService, type CameraState } from './generated/livelink_pb';
import { ImageType, NodePinType } from './generated/octaneenums_pb';
import { ApiItemArrayService, ApiItemService, ApiNodeGraphService, ApiProjectManagerService } from './generated/scenegraph_pb';

/** What one camera round trip read back. */
export interface CameraReadBack {
  position: [number, number, number];
  fov: number;
}

/** SetCamera with a typed CameraState, then GetCamera. */
export async function cameraRoundTrip(transport: Transport, position: [number, number, number], fov: number): Promise<CameraReadBack> {
  const livelink = createClient(LiveLinkService, transport);
  const state: CameraState = create(CameraStateSchema, {
    posSet: { case: 'position', value: { x: position[0], y: position[1], z: position[2] } },
    fovSet: { case: 'fov', value: fov },
  });
  await livelink.setCamera(state);
  const read = await livelink.getCamera({});
  if (read.posSet.case !== 'position' || read.fovSet.case !== 'fov') throw new Error('GetCamera: position or fov unset');
  const { x, y, z } = read.posSet.value;
  return { position: [x, y, z], fov: read.fovSet.value };
}

/** The outType of every item the root graph owns, as the generated enum. */
export async function ownedItemTypes(transport: Transport): Promise<{ name: string; type: string }[]> {
  const root = (await createClient(ApiProjectManagerService, transport).rootNodeGraph({})).result;
  if (!root) throw new Error('rootNodeGraph: no result');
  const list = (await createClient(ApiNodeGraphService, transport).getOwnedItems({ objectPtr: root })).list;
  if (!list) throw new Error('getOwnedItems: no list');
  const items = createClient(ApiItemArrayService, transport);
  const item = createClient(ApiItemService, transport);
  const size = (await items.size({ objectPtr: list })).result;
  const out: { name: string; type: string }[] = [];
  for (let index = 0; index < size; index += 1) {
    const ref = (await items.get({ objectPtr: list, index })).result;
    if (!ref) throw new Error(`ApiItemArray.get(${index}): no result`);
    const name = (await item.name({ objectPtr: ref })).result;
    const outType: NodePinType = (await item.outType({ objectPtr: ref })).result;
    out.push({ name, type: NodePinType[outType] });
  }
  return out;
}

/** Registers the callback and counts newImage notifications until `count`, then grabs one image. */
export async function imagesAfterNotifications(transport: Transport, count: number, userData: bigint): Promise<{ notifications: number; imageType: string; width: number; height: number }> {
  const engine = createClient(ApiRenderEngineService, transport);
  await engine.setOnNewImageCallback({ callback: create(OnNewImageCallbackTSchema, { callbackSource: 'octaneweb-interop-ts' }), userData });
  // Bounded by our own timer: connect's `timeoutMs` timer outlives a stream left early.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error('callbackChannel: not done within 30 s')), 30000);
  let notifications = 0;
  try {
    for await (const message of createClient(StreamCallbackService, transport).callbackChannel({}, { signal: abort.signal })) {
      if (message.payload.case === 'newImage') notifications += 1;
      if (notifications >= count) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  const grabbed = await engine.grabRenderResult({});
  await engine.releaseRenderResult({});
  const image = grabbed.renderImages?.data[0];
  if (!grabbed.result || !image || !image.size) throw new Error('grabRenderResult: no image');
  return { notifications, imageType: ImageType[image.type], width: image.size.x, height: image.size.y };
}

/** The code a call with a handle the server never gave out fails with. */
export async function badHandleCode(transport: Transport): Promise<string> {
  const item = createClient(ApiItemService, transport);
  try {
    await item.name({ objectPtr: create(ObjectRefSchema, { handle: 987654321n, type: ObjectRef_ObjectType.ApiItem }) });
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
  throw new Error('a bad handle succeeded');
}
