// The second example service (examples/telemetry) in the browser: the example's
// `telemetry-server` and `octaneweb serve --reflect --builtin-schema none` in front of it (the
// schema comes from reflection), the dashboard page driving every RPC kind over /ws, and the
// API explorer running the Control bidi stream.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  callCount, callJson, freePort, launchBrowser, openPage, portOpen, screenshot, startBinary,
  startCommand, telemetryBin,
} from './harness.mjs';

const SERVICE = 'telemetry.v1.TrainingService';

describe('telemetry example', { timeout: 180000 }, () => {
  let telemetry;
  let gateway;
  let browser;
  let gatewayUrl;

  before(async () => {
    const telemetryPort = await freePort();
    telemetry = await startBinary(
      telemetryBin(),
      ['--listen', `127.0.0.1:${telemetryPort}`, '--steps-per-second', '20', '--total-steps', '100000'],
      () => portOpen(telemetryPort),
    );
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}/`;
    gateway = await startCommand(
      ['serve', '--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `127.0.0.1:${telemetryPort}`,
        '--reflect', '--builtin-schema', 'none'],
      async () => (await fetch(`${gatewayUrl}health`)).ok,
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await telemetry?.stop();
  });

  test('the dashboard charts the loss and its commands steer the job', async () => {
    const page = await openPage(browser);
    await page.goto(`${gatewayUrl}examples/telemetry.html`);
    await page.waitForFunction(() => document.body.dataset.connection === 'live' && Number(document.body.dataset.points) >= 5);
    assert.equal(await page.getAttribute('body', 'data-state'), 'running');
    // The chart drew the curve: the line colour is on the canvas.
    const lit = await page.evaluate(() => {
      const canvas = document.getElementById('loss-chart');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] > 120 && data[i + 1] < 190 && data[i + 2] < 110) count += 1;
      return count;
    });
    assert.ok(lit > 50, `loss line pixels: ${lit}`);

    // Pause: acknowledged on the Control stream; the job (asked directly) is paused.
    await page.click('#btn-pause');
    await page.waitForFunction(() => document.body.dataset.state === 'paused' && Number(document.body.dataset.acks) >= 1);
    const paused = await callJson(gatewayUrl, SERVICE, 'GetJob');
    assert.equal(paused.state, 'JOB_STATE_PAUSED');

    // Set the learning rate, then one that is refused (the stream stays open).
    await page.fill('#lr-input', '0.2');
    await page.click('#btn-set-lr');
    await page.waitForFunction(() => document.body.dataset.learningRate === '0.2');
    assert.equal((await callJson(gatewayUrl, SERVICE, 'GetJob')).learning_rate, 0.2);
    await page.fill('#lr-input', '-1');
    await page.click('#btn-set-lr');
    await page.waitForSelector('#acks li.refused');
    assert.match(await page.textContent('#acks li.refused'), /learning rate/);

    // Resume: batches at the new rate arrive.
    const pointsBefore = Number(await page.getAttribute('body', 'data-points'));
    await page.click('#btn-resume');
    await page.waitForFunction(() => document.body.dataset.state === 'running');
    await page.waitForFunction((n) => Number(document.body.dataset.points) > n + 3, pointsBefore);
    assert.equal(await page.evaluate(() => window.telemetry.points.at(-1).learningRate), 0.2);
    assert.equal(Number(await page.getAttribute('body', 'data-acks')), 4, 'one acknowledgement per command');

    // A note over the client stream, then a restart (unary) that starts a new run.
    await page.fill('#note-text', 'raised the learning rate');
    await page.click('#btn-note');
    await page.waitForFunction(() => document.body.dataset.notes === '1');
    await page.click('#btn-restart');
    await page.waitForFunction(() => document.body.dataset.run === '2');
    await page.waitForFunction(() => Number(document.body.dataset.points) >= 10);
    // The chart started over with the new run.
    assert.ok(await page.evaluate(() => window.telemetry.points[0].step) <= 3);

    assert.ok(await callCount(gatewayUrl, 'websocket', `${SERVICE}/GetJob`, 'OK') >= 1);
    assert.equal(await callCount(gatewayUrl, 'websocket', `${SERVICE}/RecordNotes`, 'OK'), 1);
    assert.equal(await callCount(gatewayUrl, 'websocket', `${SERVICE}/RestartJob`, 'OK'), 1);
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)));
    await screenshot(page, 'telemetry-dashboard');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('rpc.js: a bidi stream answers as it goes, half-close ends it; a deadline ends a server stream', async () => {
    const page = await openPage(browser);
    await page.goto(`${gatewayUrl}examples/telemetry.html`);
    const result = await page.evaluate(async (service) => {
      const { RpcClient } = await import(new URL('../js/rpc.js', location.href).href);
      const rpc = new RpcClient(new URL('../ws', location.href).href.replace(/^http/, 'ws'));
      const control = rpc.bidi(`${service}/Control`);
      control.send({ command_id: 'a', pause: {} });
      const first = (await control.next()).value;
      control.send({ command_id: 'b', set_learning_rate: { learning_rate: 99 } });
      const second = (await control.next()).value;
      control.send({ command_id: 'c', resume: {} });
      control.end();
      const answers = [];
      for await (const ack of control) answers.push(ack.command_id);
      let sendAfterEnd = '';
      try {
        control.send({ command_id: 'd', pause: {} });
      } catch (err) {
        sendAfterEnd = err.code;
      }
      // WatchMetrics never ends by itself: the deadline ends it, after some batches.
      let batches = 0;
      let deadline = null;
      try {
        for await (const event of rpc.serverStream(`${service}/WatchMetrics`, {}, { timeoutMs: 400 })) if (event.batch) batches += 1;
      } catch (err) {
        deadline = err.code;
      }
      return {
        first: [first.command_id, first.accepted, first.status.state],
        second: [second.command_id, second.accepted, second.detail],
        answers,
        sendAfterEnd,
        batches,
        deadline,
      };
    }, SERVICE);
    assert.deepEqual(result.first, ['a', true, 'JOB_STATE_PAUSED']);
    assert.equal(result.second[0], 'b');
    assert.equal(result.second[1], false);
    assert.match(result.second[2], /learning rate/);
    assert.deepEqual(result.answers, ['c']);
    assert.equal(result.sendAfterEnd, 'FAILED_PRECONDITION');
    assert.ok(result.batches >= 1, `batches before the deadline: ${result.batches}`);
    assert.equal(result.deadline, 'DEADLINE_EXCEEDED');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('the explorer runs the Control bidi stream: answers arrive while it is open', async () => {
    const page = await openPage(browser);
    await page.goto(gatewayUrl);
    await page.click('#tab-api');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.state === 'ready');
    await page.fill('#explorer-search', 'Control');
    await page.click(`button[data-method="${SERVICE}/Control"]`);
    assert.match(await page.textContent('#explorer-method'), /bidi/);
    await page.click('.editor-tabs [role="tab"]:has-text("JSON")');
    await page.fill('#explorer-json', JSON.stringify({ commandId: 'from-explorer', pause: {} }));
    await page.click('#explorer-call');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'streaming');
    await page.click('#explorer-send');
    // The answer arrives before the client half-closes: a real bidi stream.
    await page.waitForFunction(() => document.getElementById('explorer').dataset.messages === '1');
    assert.match(await page.textContent('#explorer-response'), /"command_id": "from-explorer"/);
    assert.match(await page.textContent('#explorer-response'), /JOB_STATE_PAUSED/);
    await page.fill('#explorer-json', JSON.stringify({ commandId: 'again', resume: {} }));
    await page.click('#explorer-send');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.messages === '2');
    await page.click('#explorer-end');
    await page.waitForFunction(() => document.getElementById('explorer').dataset.call === 'done');
    assert.match(await page.textContent('#explorer-status'), /Stream ended OK · 2 sent · 2 received/);
    assert.equal((await callJson(gatewayUrl, SERVICE, 'GetJob')).state, 'JOB_STATE_RUNNING');
    assert.ok(await callCount(gatewayUrl, 'websocket', `${SERVICE}/Control`, 'OK') >= 1);
    await screenshot(page, 'explorer-bidi');

    // No curl for a bidi stream; its rpc.js snippet runs as shown, answers and trailers logged.
    assert.ok(await page.isHidden('#explorer-curl-box'));
    await page.fill('#explorer-json', JSON.stringify({ commandId: 'from-snippet', pause: {} }));
    await page.click('#explorer-snippet-box > summary');
    await page.waitForFunction(() => document.getElementById('explorer-snippet-text').textContent.includes('from-snippet'));
    const snippet = await page.textContent('#explorer-snippet-text');
    assert.match(snippet, /rpc\.bidi\("telemetry\.v1\.TrainingService\/Control"\)/);
    const logged = [];
    const done = new Promise((resolve) => page.on('console', async (message) => {
      if (message.type() !== 'log') return;
      logged.push(await message.args()[0].jsonValue());
      if (logged.length === 2) resolve();
    }));
    await page.addScriptTag({ type: 'module', content: snippet });
    await done;
    assert.equal(logged[0].command_id, 'from-snippet');
    assert.equal(logged[0].accepted, true);
    assert.deepEqual(logged[1], {}, 'then the trailers');
    assert.equal((await callJson(gatewayUrl, SERVICE, 'GetJob')).state, 'JOB_STATE_PAUSED');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});
