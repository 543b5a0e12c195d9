// Supervision of the engine replicas `landlord serve` starts itself (`[[gateway.engines]]`,
// gateway/engine_replicas.h): a replica's `llama-server` SIGKILLed while serving is reported
// down (logged, `landlord_gateway_engine_up` 0) and routed around, so requests keep succeeding
// on the other replica; it is restarted after its backoff on a new port, and once its /health
// answers 200 the gateway routes to it again and counts the restart
// (`landlord_gateway_engine_restarts_total`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { replicaPid, serverUrl, startServeWithEngines, until } from '../lib/llama_server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.LANDLORD_BIN ?? path.join(HERE, '../../build/release/landlord'));
const ADMIN_KEY = 'engine-supervision-admin-key-0123456789';
const MODEL = 'random-llama';

describe('landlord serve restarts an engine replica whose server died', () => {
  const s = {};
  before(async () => {
    // Beside the fleet (no GPUs held): started at once, never reclaimed.
    await startServeWithEngines(s, { bin: BIN, adminKey: ADMIN_KEY, tenant: 'supervision', model: MODEL,
      gpusPerReplica: 0, ctx: 2048 });
  });
  after(async () => {
    if (s.serve) assert.deepEqual(await s.serve.stop(), { code: 0, signal: null }, 'serve exits 0');
    for (const id of ['rep_eng1', 'rep_eng2']) assert.equal(await replicaPid(s.logs, id), null, `${id} left running`);
    if (s.dir) await fs.rm(s.dir, { recursive: true, force: true });
  });

  // The value of `landlord_gateway_<name>{replica="<id>",...}` on /metrics (undefined if absent).
  const metric = async (name, id) => {
    const text = await fetch(`${s.url}/metrics`).then((r) => r.text());
    const m = new RegExp(`^landlord_gateway_${name}\\{replica="${id}",[^}]*\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  // Temperature 0: the random-weight model's sampled output can fail llama-server's own parse of
  // the chat template's output format (a 500 from the engine, seen once in make test).
  const chat = (content) =>
    s.call('POST', '/v1/chat/completions', s.key, {
      model: MODEL, messages: [{ role: 'user', content }], max_tokens: 2, temperature: 0,
    });

  test('SIGKILLed while serving: routed around, restarted, serving again', async () => {
    await until('both replicas up', async () => (await metric('engine_up', 'rep_eng1')) === 1 && (await metric('engine_up', 'rep_eng2')) === 1);
    const first = await replicaPid(s.logs, 'rep_eng1');
    assert.ok(first, 'the pid of rep_eng1');
    process.kill(first, 'SIGKILL');
    await until('rep_eng1 down', async () => (await metric('engine_up', 'rep_eng1')) === 0);

    // Meanwhile every request is answered, by the other replica (rep_eng1 may be back before
    // the last: an answer is checked when rep_eng1 was still down after it).
    let whileDown = 0;
    for (let i = 0; i < 6; ++i) {
      const r = await chat(`While one is down, request ${i}.`);
      assert.equal(r.status, 200, r.text);
      if ((await metric('engine_up', 'rep_eng1')) !== 0) continue;
      assert.equal(r.headers.get('x-landlord-replica'), 'rep_eng2');
      ++whileDown;
    }
    assert.ok(whileDown > 0, 'answered while rep_eng1 was down');

    // A new server for rep_eng1, and its own /health answering 200.
    const second = await until('a new server for rep_eng1', async () => {
      const pid = await replicaPid(s.logs, 'rep_eng1');
      return pid !== null && pid !== first && pid;
    });
    const url = await serverUrl(second);
    await until(`${url}/health to answer 200`, async () => {
      try {
        return (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })).status === 200;
      } catch {
        return false;  // not listening yet
      }
    });
    // The gateway sees it too, counts the restart, and routes to it again.
    await until('rep_eng1 up again', async () => (await metric('engine_up', 'rep_eng1')) === 1);
    assert.equal(await metric('engine_restarts_total', 'rep_eng1'), 1);
    assert.equal(await metric('engine_restarts_total', 'rep_eng2'), 0);
    let served = null;
    for (let i = 0; i < 32 && served === null; ++i) {
      const r = await chat(`Back again, request ${i}.`);
      assert.equal(r.status, 200, r.text);
      if (r.headers.get('x-landlord-replica') === 'rep_eng1') served = r;
    }
    assert.ok(served, 'rep_eng1 answered a request after its restart');
    assert.equal(served.json.usage.completion_tokens, 2);

    const { stderr } = s.serve.output();
    assert.match(stderr, /engine replica `rep_eng1`: its server exited \(signal 9\) while serving; restart 1 in 1000 ms/);
    assert.match(stderr, /engine replica `rep_eng1` is back at 127\.0\.0\.1:\d+/);
  });
});
