// web/js/rpc.d.ts and api.d.ts against rpc.js and api.js: tsc --strict type-checks
// rpc-types.ts and api-types.ts (which use every export, and must be refused where the
// declarations are strict), the declared classes, functions and constants are compared with
// what the modules export at run time, and rpc-types.ts, bundled by esbuild, runs against the
// real `octaneweb demo` over /ws, which also serves rpc.d.ts.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { build, stop as stopEsbuild } from 'esbuild';
import ts from 'typescript';
import { here, startDemo } from './common.mjs';

const web = path.resolve(here, '..', '..', 'web', 'js');
const declarations = path.join(web, 'rpc.d.ts');
/** Each module with a declaration file, and how to make an instance of each of its classes. */
const MODULES = {
  'rpc.js': { RpcClient: (m) => new m.RpcClient('ws://127.0.0.1:1/ws'), RpcError: (m) => new m.RpcError('NOT_FOUND', 'x') },
  'api.js': { ApiError: (m) => new m.ApiError('x', { status: 404, code: 'NOT_FOUND' }) },
};
/** A directory of this test's own (generated-client.test.mjs empties generated/ as it starts). */
let work;
const bin = (name) => path.join(here, 'node_modules', '.bin', name);

/**
 * Run-time members rpc.d.ts leaves out on purpose: rpc.js's own business, and what a class
 * inherits from its base (Error's message and stack).
 */
const NOT_DECLARED = {
  RpcClient: ['socket', 'opening', 'pending', 'calls', 'nextId', 'sendFrame', 'forget', 'onSocketMessage'],
  RpcError: ['message', 'stack'],
  ApiError: ['message', 'stack'],
};

/** The value exports of a .d.ts file, with the public members of each declared class. */
function declared(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const exports = new Map();
  for (const statement of source.statements) {
    const exported = statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (!exported) continue;
    if (ts.isFunctionDeclaration(statement)) exports.set(statement.name.text, 'function');
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) exports.set(declaration.name.getText(source), 'value');
    }
    if (ts.isClassDeclaration(statement)) {
      const members = new Set();
      for (const member of statement.members) {
        if (ts.isConstructorDeclaration(member) || !member.name) continue;
        members.add(member.name.getText(source));
      }
      exports.set(statement.name.text, members);
    }
  }
  return exports;
}

/** Every member an instance of `value` has at run time (own properties and its prototype's). */
function runtimeMembers(instance, stopAt) {
  const names = new Set(Object.keys(instance));
  for (let proto = Object.getPrototypeOf(instance); proto && proto !== stopAt; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) if (name !== 'constructor') names.add(name);
  }
  return names;
}

describe('rpc.js and api.js type declarations', { timeout: 240000 }, () => {
  let demo;
  let bundle;

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'octaneweb-rpc-types-'));
    bundle = path.join(work, 'rpc-types.mjs');
    await build({ entryPoints: [path.join(here, 'rpc-types.ts')], bundle: true, platform: 'neutral', format: 'esm', outfile: bundle, logLevel: 'silent' });
    await stopEsbuild();
    demo = await startDemo();
  });

  after(async () => {
    await demo?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('tsc --strict accepts every use and refuses what the declarations forbid', () => {
    const tsconfig = {
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'es2022', moduleResolution: 'bundler', lib: ['es2022', 'dom', 'dom.iterable'] },
      files: [path.join(here, 'rpc-types.ts'), path.join(here, 'api-types.ts')],
    };
    const config = path.join(work, 'tsconfig.json');
    writeFileSync(config, JSON.stringify(tsconfig));
    const run = spawnSync(bin('tsc'), ['-p', config], { cwd: here, encoding: 'utf8', timeout: 120000 });
    assert.equal(run.error, undefined, `cannot run tsc: ${run.error?.message} (npm ci in tests/interop?)`);
    assert.equal(run.status, 0, `tsc --strict over rpc-types.ts and api-types.ts:\n${run.stdout}${run.stderr}`);

    // The check has teeth: a use of a method rpc.d.ts does not declare is an error.
    const broken = path.join(work, 'broken.ts');
    writeFileSync(broken, [
      `import { RpcClient } from ${JSON.stringify(path.join(web, 'rpc.js'))};`,
      `new RpcClient('ws://127.0.0.1:1/ws').unaryCall('LiveLink/GetCamera');`,
      '',
    ].join('\n'));
    const brokenConfig = path.join(work, 'tsconfig.broken.json');
    writeFileSync(brokenConfig, JSON.stringify({ ...tsconfig, files: [broken] }));
    const refused = spawnSync(bin('tsc'), ['-p', brokenConfig], { cwd: here, encoding: 'utf8', timeout: 120000 });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout, /Property 'unaryCall' does not exist on type 'RpcClient'/);
  });

  test('the declarations name exactly what rpc.js and api.js export', async () => {
    for (const [file, makers] of Object.entries(MODULES)) {
      await compareExports(file, makers);
    }
  });

  async function compareExports(file, makers) {
    // api.js's prefs.js listens for other tabs' storage events on `window` when it loads;
    // its exports are all this test reads.
    globalThis.window ??= new EventTarget();
    const module = await import(pathToFileURL(path.join(web, file)).href);
    const exports = declared(path.join(web, file.replace(/\.js$/, '.d.ts')));
    assert.deepEqual([...exports.keys()].sort(), Object.keys(module).sort(), `${file}: value exports`);
    for (const [name, kind] of exports) {
      if (kind === 'function') {
        assert.equal(typeof module[name], 'function', name);
        continue;
      }
      if (kind === 'value') {
        assert.notEqual(typeof module[name], 'function', name);
        continue;
      }
      const instance = makers[name](module);
      const stopAt = instance instanceof Error ? Error.prototype : EventTarget.prototype;
      const runtime = runtimeMembers(instance, stopAt);
      for (const member of kind) {
        // Inherited declarations (addEventListener, name) are checked on the whole instance.
        assert.ok(runtime.has(member) || member in instance, `${name}.${member} is declared but rpc.js has none`);
      }
      const undeclared = [...runtime].filter((member) => !kind.has(member) && !NOT_DECLARED[name].includes(member));
      assert.deepEqual(undeclared, [], `${name} members that its .d.ts does not declare`);
    }
  }

  test('the typed code runs against the real gateway, which serves rpc.d.ts', async () => {
    const served = await fetch(new URL('js/rpc.d.ts', demo.url));
    assert.equal(served.status, 200);
    assert.match(served.headers.get('content-type'), /^text\/plain/);
    assert.equal(await served.text(), readFileSync(declarations, 'utf8'));

    const wsUrl = new URL('ws', demo.url.replace(/^http/, 'ws')).href;
    const runner = path.join(work, 'run.mjs');
    writeFileSync(runner, [
      `import { exercise } from ${JSON.stringify(pathToFileURL(bundle).href)};`,
      `console.log(JSON.stringify(await exercise(${JSON.stringify(wsUrl)})));`,
      '',
    ].join('\n'));
    // Node 20 has WebSocket behind a flag.
    const flags = typeof WebSocket === 'undefined' ? ['--experimental-websocket', '--no-warnings'] : [];
    const child = spawn(process.execPath, [...flags, runner], { cwd: here });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `rpc-types.ts failed:\n${stderr}`);
    const report = JSON.parse(stdout);
    assert.ok(report.fov > 0, JSON.stringify(report));
    assert.ok(report.openResult.message.position, JSON.stringify(report.openResult));
    assert.deepEqual(report.openResult.headers, report.openHeaders, 'onHeaders saw the headers the result holds');
    assert.match(report.streamed, /applied 2 camera updates/);
    assert.deepEqual(report.bidiAnswers.length, 1);
    assert.deepEqual(report.bidiTrailers, {});
    assert.equal(report.deadline, 'DEADLINE_EXCEEDED');
    assert.equal(report.notFound.code, 'NOT_FOUND');
    assert.deepEqual(report.notFound.details, []);
    assert.equal(report.shared, true);
    assert.deepEqual(report.events, ['open', 'close 1000']);
    assert.ok(report.stats.opened === 1 && report.stats.sent >= 8 && report.stats.received >= 8, JSON.stringify(report.stats));
    assert.equal(report.made, 'RpcError NOT_FOUND made here 1');
  });
});
