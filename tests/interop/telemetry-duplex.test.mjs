// Client and bidirectional streams that reach a real upstream, through Connect and gRPC-Web
// over HTTP/2: @connectrpc/connect-node against `octaneweb serve --reflect` in front of the
// example telemetry server (examples/telemetry), whose Control method is bidirectional and
// RecordNotes client streaming. The message types come from the gateway's /schema.binpb.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { freePort, portOpen, startBinary, startCommand, telemetryBin } from '../browser/harness.mjs';
import { pushable, waitFor } from './common.mjs';

const SERVICE = 'telemetry.v1.TrainingService';

const TRANSPORTS = [
  ['Connect binary (HTTP/2)', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
  ['Connect JSON (HTTP/2)', (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: false })],
  ['gRPC-Web binary (HTTP/2)', (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
];

describe('telemetry upstream: client and bidi streams over Connect and gRPC-Web', { timeout: 120000 }, () => {
  let telemetry;
  let gateway;
  let gatewayUrl;
  let training;

  before(async () => {
    const telemetryPort = await freePort();
    telemetry = await startBinary(
      telemetryBin(),
      ['--listen', `127.0.0.1:${telemetryPort}`, '--steps-per-second', '20', '--total-steps', '100000'],
      () => portOpen(telemetryPort),
    );
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${telemetryPort}`,
        '--reflect', '--builtin-schema', 'none'],
      async () => (await fetch(`${gatewayUrl}/health`)).ok,
    );
    const schema = await fetch(`${gatewayUrl}/schema.binpb`);
    assert.equal(schema.status, 200, 'GET /schema.binpb');
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await schema.arrayBuffer())));
    training = registry.getService(SERVICE);
    assert.ok(training, `${SERVICE} in the gateway's schema`);
  });

  after(async () => {
    await gateway?.stop();
    await telemetry?.stop();
  });

  /** The gateway's upstream streams in flight (`octaneweb_upstream_streams`). */
  async function upstreamStreams() {
    const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('octaneweb_upstream_streams '));
    assert.ok(line, 'no octaneweb_upstream_streams in /metrics');
    return Number(line.split(' ').pop());
  }

  for (const [name, make] of TRANSPORTS) {
    test(`${name}: Control (bidi) answers each command while the stream is open`, async () => {
      const client = createClient(training, make(gatewayUrl));
      const commands = pushable();
      commands.push({ commandId: `${name}-pause`, action: { case: 'pause', value: {} } });
      const acks = client.control(commands)[Symbol.asyncIterator]();
      const paused = await acks.next();
      assert.equal(paused.value.commandId, `${name}-pause`);
      assert.equal(paused.value.accepted, true, paused.value.detail);
      // The call is the upstream's: it holds an upstream stream while it runs.
      assert.equal(await upstreamStreams(), 1, 'one upstream stream in flight');
      commands.push({ commandId: `${name}-resume`, action: { case: 'resume', value: {} } });
      const resumed = await acks.next();
      assert.equal(resumed.value.commandId, `${name}-resume`);
      assert.equal(resumed.value.accepted, true, resumed.value.detail);
      commands.end();
      assert.equal((await acks.next()).done, true, 'the call ends when the commands do');
      await waitFor(async () => (await upstreamStreams()) === 0, 'the upstream stream to be released');
    });

    test(`${name}: RecordNotes (client stream) counts every note`, async () => {
      const client = createClient(training, make(gatewayUrl));
      async function* notes() {
        for (const text of ['first', 'second', 'third']) yield { text };
      }
      const summary = await client.recordNotes(notes());
      assert.equal(summary.accepted, 3);
    });
  }
});
