// @connectrpc/connect-node over TLS to the real gateway (`octaneweb demo --tls-cert --tls-key`,
// a self-signed certificate for 127.0.0.1 made with the openssl CLI) that also requires a
// token (`--token-file`). HTTP/2 is negotiated by ALPN (Connect binary, gRPC), HTTP/1.1 on the
// same port (Connect JSON, gRPC-Web); the token travels as `Authorization: Bearer` from an
// interceptor. Then mutual TLS (`--tls-client-ca`): a client certificate signed by the CA is
// let in, a client without one is not.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { OCTANE_PROTO_ROOT, registryFor, startDemo } from './common.mjs';
import { callbackStream, failureOf, makeClients } from './scenarios.mjs';

const registry = registryFor(OCTANE_PROTO_ROOT);

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A self-signed EC P-256 certificate for 127.0.0.1 (cert.pem, key.pem in `dir`). */
function serverCertificate(dir) {
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2',
    '-keyout', 'key.pem', '-out', 'cert.pem',
  ], dir);
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), pem: readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
}

/** An interceptor that sends `Authorization: Bearer <token>` with every call. */
const bearer = (token) => (next) => (request) => {
  request.header.set('Authorization', `Bearer ${token}`);
  return next(request);
};

/** The transports under test; `tls` holds the Node TLS options (ca, and a client certificate for mTLS). */
const TRANSPORTS = [
  { name: 'Connect binary (HTTP/2)', make: (baseUrl, tls, interceptors) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true, nodeOptions: tls, interceptors }) },
  { name: 'gRPC (HTTP/2)', make: (baseUrl, tls, interceptors) => createGrpcTransport({ baseUrl, httpVersion: '2', nodeOptions: tls, interceptors }) },
  { name: 'Connect JSON (HTTP/1.1)', make: (baseUrl, tls, interceptors) => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false, nodeOptions: tls, interceptors }) },
  { name: 'gRPC-Web binary (HTTP/1.1)', make: (baseUrl, tls, interceptors) => createGrpcWebTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true, nodeOptions: tls, interceptors }) },
];

describe('TLS and a token', () => {
  const token = `interop-${randomBytes(16).toString('hex')}`;
  let dir;
  let certificate;
  let demo;
  let baseUrl;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-interop-tls-'));
    certificate = serverCertificate(dir);
    writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
    demo = await startDemo({ extraArgs: ['--tls-cert', certificate.cert, '--tls-key', certificate.key, '--token-file', path.join(dir, 'token')] });
    baseUrl = demo.url.replace(/\/$/, '');
  });

  after(async () => {
    await demo?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the gateway prints an https URL with the token', () => {
    assert.match(demo.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(demo.token, token);
  });

  // On HTTP/1.1 the 401 goes out before the request body is read; the gateway then reads
  // and discards the body, so the client reads the 401 instead of failing with EPIPE.
  for (const { name, make } of TRANSPORTS) {
    describe(name, () => {
      test('GetCamera with the token', async () => {
        const clients = makeClients(registry, make(baseUrl, { ca: certificate.pem }, [bearer(token)]));
        const camera = await clients.livelink.getCamera({});
        assert.equal(camera.posSet.case, 'position', JSON.stringify(camera));
        assert.ok(camera.fovSet.value > 0);
      });

      test('no token, or a wrong one: Unauthenticated', async () => {
        for (const interceptors of [[], [bearer(`${token.slice(0, -1)}x`)]]) {
          const clients = makeClients(registry, make(baseUrl, { ca: certificate.pem }, interceptors));
          const failure = await failureOf(() => clients.livelink.getCamera({}));
          assert.equal(failure.code, Code.Unauthenticated, `${failure.codeName}: ${failure.message}`);
          assert.match(failure.message, /token/);
        }
      });

      test('a client that does not trust the certificate does not connect', async () => {
        const clients = makeClients(registry, make(baseUrl, {}, [bearer(token)]));
        const failure = await failureOf(() => clients.livelink.getCamera({}));
        assert.notEqual(failure.code, Code.Unauthenticated, 'refused by TLS, before any HTTP');
        assert.match(failure.message, /self[- ]signed|certificate/i, `${failure.codeName}: ${failure.message}`);
      });
    });
  }

  test('gRPC (HTTP/2): the callbackChannel server stream with grabbed images over TLS', async () => {
    const clients = makeClients(registry, createGrpcTransport({ baseUrl, httpVersion: '2', nodeOptions: { ca: certificate.pem }, interceptors: [bearer(token)] }));
    const seen = await callbackStream(clients, { userData: 9100, minImages: 3 });
    assert.ok(seen.newImages >= 3);
    assert.deepEqual(seen.sizes[0], [256, 128]);
  });
});

describe('mutual TLS (--tls-client-ca)', () => {
  let dir;
  let certificate;
  let client;
  let demo;
  let baseUrl;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-interop-mtls-'));
    certificate = serverCertificate(dir);
    // A CA, and a client certificate it signs (EKU clientAuth).
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', '/CN=octaneweb interop CA', '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-days', '2', '-keyout', 'ca-key.pem', '-out', 'ca.pem',
    ], dir);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=interop client', '-keyout', 'client-key.pem', '-out', 'client.csr'], dir);
    writeFileSync(path.join(dir, 'client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', 'client.ext', '-out', 'client.pem'], dir);
    client = { cert: readFileSync(path.join(dir, 'client.pem'), 'utf8'), key: readFileSync(path.join(dir, 'client-key.pem'), 'utf8') };
    demo = await startDemo({ extraArgs: ['--tls-cert', certificate.cert, '--tls-key', certificate.key, '--tls-client-ca', path.join(dir, 'ca.pem')] });
    baseUrl = demo.url.replace(/\/$/, '');
  });

  after(async () => {
    await demo?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const { name, make } of [TRANSPORTS[1], TRANSPORTS[3]]) {
    test(`${name}: a client certificate from the CA is let in, no certificate is not`, async () => {
      const withCert = makeClients(registry, make(baseUrl, { ca: certificate.pem, ...client }, []));
      const camera = await withCert.livelink.getCamera({});
      assert.equal(camera.posSet.case, 'position');

      const without = makeClients(registry, make(baseUrl, { ca: certificate.pem }, []));
      const failure = await failureOf(() => without.livelink.getCamera({}));
      assert.notEqual(failure.code, Code.Unauthenticated, 'refused in the TLS handshake, before any HTTP');
      // How the refused handshake surfaces depends on timing: a reset while the request is
      // still being written is Aborted in connect-node's HTTP/1.1 transport.
      assert.ok([Code.Unavailable, Code.Internal, Code.Unknown, Code.Canceled, Code.Aborted].includes(failure.code), `${failure.codeName}: ${failure.message}`);
    });
  }
});
