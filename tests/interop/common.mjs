// Shared set-up for the interop tests: build our protos into a descriptor set with the buf CLI
// (from npm), turn it into a @bufbuild/protobuf registry at run time, and start the real
// `octaneweb demo` (gateway in front of the embedded reference render server) through the
// browser tests' harness.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

export { startDemo, launchBrowser, openPage } from '../browser/harness.mjs';

export const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

/** Services the tests name directly, by full name. */
export const LIVELINK = 'livelinkapi.LiveLinkService';
export const ITEM = 'octaneapi.ApiItemService';

const descriptorCache = new Map();

/**
 * Runs `buf build` over `root` (an include root: every .proto under it is compiled, imports
 * resolve relative to it, google/protobuf/* comes with buf) and returns the encoded
 * FileDescriptorSet with imports included.
 */
export function buildDescriptorSet(root) {
  const cached = descriptorCache.get(root);
  if (cached) return cached;
  const buf = path.join(here, 'node_modules', '.bin', process.platform === 'win32' ? 'buf.cmd' : 'buf');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-interop-'));
  const out = path.join(dir, 'set.binpb');
  try {
    const run = spawnSync(buf, ['build', root, '-o', out], { encoding: 'utf8', timeout: 60000 });
    if (run.error) throw new Error(`cannot run ${buf}: ${run.error.message} (npm ci in tests/interop?)`);
    if (run.status !== 0) throw new Error(`buf build ${root} failed (${run.status}):\n${run.stderr}`);
    const bytes = new Uint8Array(readFileSync(out));
    descriptorCache.set(root, bytes);
    return bytes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** proto/octane: callback generation 2, the default schema of the reference render server. */
export const OCTANE_PROTO_ROOT = path.join(repo, 'proto', 'octane');

/**
 * Test-only protos naming methods the server does not have (an unknown method on a known
 * service, an unknown service), so that clients can call them with their usual machinery.
 */
export const MISSING_PROTO_ROOT = path.join(here, 'proto-missing');

/** A registry of every type and service in `root`, built at run time. */
export function registryFor(root) {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, buildDescriptorSet(root)));
}

/** `registry.getService(name)`, or a clear error naming the service. */
export function service(registry, name) {
  const found = registry.getService(name);
  if (!found) throw new Error(`service ${name} is not in the descriptor set`);
  return found;
}

/** The gateway's host:port from its base URL (`http://127.0.0.1:PORT/`). */
export function hostPort(url) {
  const parsed = new URL(url);
  return parsed.host;
}

/** Path of the Python venv the install script creates (override with INTEROP_VENV). */
export function venvPython() {
  const venv = process.env.INTEROP_VENV || path.join(repo, 'target', 'interop-venv');
  return path.join(venv, 'bin', 'python');
}

/** Camera values exactly representable as float32, so a read-back compares with ===. */
export const CAMERA_A = Object.freeze({
  position: { x: 6.5, y: 2.25, z: -3.75 },
  target: { x: 0.5, y: 0.25, z: -0.125 },
  fov: 42.5,
});
export const CAMERA_B = Object.freeze({
  position: { x: -4.25, y: 3.5, z: 5.0 },
  target: { x: 0.0, y: 0.75, z: 0.0 },
  fov: 55.0,
});

/**
 * Serves `files` (a Map of path → `{type, body}`, read at each request, so entries may be
 * added after the server started) on 127.0.0.1 at an ephemeral port: a page's own origin,
 * different from the gateway's.
 */
export async function startStaticServer(files) {
  const server = http.createServer((request, response) => {
    const file = files.get(new URL(request.url, 'http://x').pathname);
    if (!file) {
      response.writeHead(request.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** An async iterable of requests the test pushes one at a time, open until end(). */
export function pushable() {
  const queue = [];
  let wake;
  let ended = false;
  return {
    push(value) {
      queue.push(value);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length > 0) yield queue.shift();
        if (ended) return;
        await new Promise((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    },
  };
}

/** Polls `check` (every 50 ms, 5 s at most) until it holds. */
export async function waitFor(check, what) {
  const started = Date.now();
  while (!(await check())) {
    assert.ok(Date.now() - started < 5000, `5 s without ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Runs a Python check script of the venv (`args`: the script and its arguments), which prints
 * one JSON line per check (`{"check": name, ...}`); resolves to `{results: Map of check name →
 * line, exitCode, stderr}`, or rejects if it does not finish within `timeoutMs`.
 */
export function runPythonChecks(what, args, timeoutMs) {
  const python = venvPython();
  if (!existsSync(python)) {
    return Promise.reject(new Error(`${python} is missing: run scripts/install-interop-deps.sh (or set INTEROP_VENV)`));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-16 * 1024);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} checks did not finish within ${timeoutMs / 1000} s:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      const results = new Map();
      for (const line of stdout.split('\n')) {
        if (!line.trim()) continue;
        try {
          const result = JSON.parse(line);
          results.set(result.check, result);
        } catch {
          stderr += `\nunparsed output: ${line}`;
        }
      }
      resolve({ results, exitCode, stderr });
    });
  });
}
