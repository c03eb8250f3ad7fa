// A small gRPC server (HTTP/2 cleartext, node:http2) for the explorer's tests: it answers
// with what it was sent, so a test can see request metadata arrive and come back as
// response headers and trailers, and it refuses on request with a detailed status
// (`grpc-status-details-bin`), which neither the render server nor the telemetry example
// sends. Its schema is ECHO_PROTO, which the gateway loads with --proto.

import http2 from 'node:http2';

export const ECHO_PROTO = `syntax = "proto3";
package echo.v1;

// Answers with what it was sent.
service Echo {
  // Says the text back. Request metadata named x-* comes back as response headers named
  // echo-x-*, and the trailer x-echo-messages counts the requests.
  rpc Say(SayRequest) returns (SayReply);
  // Joins the texts of every request message it was sent.
  rpc Collect(stream SayRequest) returns (SayReply);
}

message SayRequest {
  // What to say back.
  string text = 1;
  // Refuse with FAILED_PRECONDITION; the status details hold the refused request.
  bool fail = 2;
  repeated uint32 codes = 3;
}

message SayReply {
  string text = 1;
}
`;

function varint(value) {
  const out = [];
  let n = value;
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field (string, bytes, message). */
function field(number, bytes) {
  const payload = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8');
  return Buffer.concat([varint((number << 3) | 2), varint(payload.length), payload]);
}

function grpcFrame(message) {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** The gRPC frames of a request body, each decoded as a SayRequest. */
function readRequests(body) {
  const requests = [];
  let pos = 0;
  while (pos + 5 <= body.length) {
    const length = body.readUInt32BE(pos + 1);
    const message = body.subarray(pos + 5, pos + 5 + length);
    pos += 5 + length;
    const request = { text: '', fail: false, codes: [] };
    let at = 0;
    while (at < message.length) {
      const key = message[at++];
      if (key === 0x0a) {
        let length = 0;
        let shift = 0;
        for (;;) {
          const byte = message[at++];
          length |= (byte & 0x7f) << shift;
          shift += 7;
          if (!(byte & 0x80)) break;
        }
        request.text = message.subarray(at, at + length).toString('utf8');
        at += length;
      } else if (key === 0x10) {
        request.fail = message[at++] !== 0;
      } else if (key === 0x18) {
        request.codes.push(message[at++]);
      } else {
        throw new Error(`unexpected field key ${key}`);
      }
    }
    requests.push(request);
  }
  return requests;
}

/**
 * The google.rpc.Status of a refusal. Its details: the refused request (an echo.v1.SayRequest,
 * with packed codes) and a google.rpc.ErrorInfo, a type the schema does not describe but the
 * gateway knows as a standard error detail.
 */
function refusalStatus(message, request) {
  const refused = Buffer.concat([field(1, request.text), Buffer.from([0x10, 1]), field(3, Buffer.concat([varint(7), varint(300)]))]);
  const errorInfo = Buffer.concat([field(1, 'ASKED_TO_FAIL'), field(2, 'echo.test')]);
  const any = (type, value) => field(3, Buffer.concat([field(1, `type.googleapis.com/${type}`), field(2, value)]));
  return Buffer.concat([Buffer.from([0x08, 9]), field(2, message), any('echo.v1.SayRequest', refused), any('google.rpc.ErrorInfo', errorInfo)]);
}

/**
 * Starts the server on 127.0.0.1 (an ephemeral port); resolves to `{port, calls, stop()}`,
 * where `calls` lists every call's path and request headers as they arrived.
 */
export function startEchoServer() {
  const calls = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => {
      calls.push({ path: headers[':path'], headers: { ...headers } });
      let requests;
      try {
        requests = readRequests(Buffer.concat(chunks));
      } catch (err) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3', 'grpc-message': encodeURIComponent(err.message) }, { endStream: true });
        return;
      }
      const echoed = {};
      for (const [name, value] of Object.entries(headers)) {
        if (name.startsWith('x-') && name !== 'x-call-id') echoed[`echo-${name}`] = value;
      }
      const failing = requests.find((r) => r.fail);
      const message = 'refused: the request asked to fail';
      const trailers = failing
        ? { 'grpc-status': '9', 'grpc-message': encodeURIComponent(message), 'grpc-status-details-bin': refusalStatus(message, failing).toString('base64'), 'x-echo-messages': String(requests.length) }
        : { 'grpc-status': '0', 'x-echo-messages': String(requests.length) };
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...echoed }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      if (!failing) stream.write(grpcFrame(field(1, requests.map((r) => r.text).join(' '))));
      stream.end();
    });
  });
  // Sessions the gateway keeps open would hold close() forever: stop() ends them.
  const sessions = new Set();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        calls,
        stop: () => new Promise((done) => {
          server.close(() => done());
          for (const session of sessions) session.destroy();
        }),
      });
    });
  });
}
