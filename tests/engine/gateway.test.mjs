// The model API gateway in front of a real llama.cpp `llama-server` (a static upstream of
// `landlord serve`): answers pass through plain and streamed, and each is billed exactly once
// with the engine's own token counts (issue 18).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { request, smallFleetToml, spawnLandlord } from '../lib/landlord.mjs';
import { sseData, startLlamaServer } from '../lib/llama_server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.LANDLORD_BIN ?? path.join(HERE, '../../build/release/landlord'));
const ADMIN_KEY = 'engine-test-admin-key-0123456789';
const MODEL = 'random-llama';

describe('the gateway in front of llama-server', () => {
  let engine, serve, dir, url, key;
  const call = (method, route, k, body) => request(url, method, route, k, body, 60_000);

  before(async () => {
    engine = await startLlamaServer({
      bin: process.env.LLAMA_SERVER,
      model: process.env.LLAMA_MODEL,
      args: ['--alias', MODEL],
    });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-engine-'));
    const trace = path.join(dir, 'owner.csv');
    await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');
    const config = path.join(dir, 'landlord.toml');
    await fs.writeFile(
      config,
      `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${path.join(dir, 'data')}"\ntick_ms = 20\n` +
        `${smallFleetToml(trace)}[gateway]\nmeter_flush_ms = 5\n` +
        `[[gateway.upstreams]]\nmodel = "${MODEL}"\nurl = "${engine.url}"\n`,
    );
    serve = spawnLandlord(BIN, ['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: ADMIN_KEY } });
    url = await serve.url;
    const t = await call('POST', '/admin/tenants', ADMIN_KEY, { name: 'engine' });
    assert.equal(t.status, 201, t.text);
    const k = await call('POST', '/admin/keys', ADMIN_KEY, { tenant_id: t.json.id });
    assert.equal(k.status, 201, k.text);
    key = k.json.key;
    const c = await call('POST', '/admin/credits', ADMIN_KEY, { tenant_id: t.json.id, amount: '5.00' });
    assert.equal(c.status, 200, c.text);
  });

  after(async () => {
    if (serve) assert.deepEqual(await serve.stop(), { code: 0, signal: null }, 'serve exits 0');
    if (engine) await engine.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  // The tenant's token usage rows, once `n` are there (usage commits a few ms after an answer).
  async function tokenRows(n) {
    for (let i = 0; i < 250; ++i) {
      const r = await call('GET', '/v1/usage', key);
      assert.equal(r.status, 200, r.text);
      const rows = r.json.data.filter((u) => u.source === 'tokens');
      if (rows.length >= n) return rows;
      await sleep(20);
    }
    assert.fail(`fewer than ${n} token usage rows`);
  }

  const sum = (rows, kind) => rows.filter((u) => u.kind === kind).reduce((a, u) => a + Number(u.quantity), 0);
  const chat = (extra) => ({
    model: MODEL,
    messages: [{ role: 'user', content: 'Through the gateway, please.' }],
    max_tokens: 6,
    temperature: 0,
    ...extra,
  });

  test('/v1/models lists the upstream`s model', async () => {
    const r = await call('GET', '/v1/models', key);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.data.some((m) => m.id === MODEL), r.text);
  });

  test('plain and streamed answers billed once each with the engine`s counts', async () => {
    const plain = await call('POST', '/v1/chat/completions', key, chat());
    assert.equal(plain.status, 200, plain.text);
    assert.ok(plain.json.timings, 'the engine`s extra fields pass through');
    const engineUsage = [plain.json.usage];

    const streamed = await call('POST', '/v1/chat/completions', key, chat({ stream: true, stream_options: { include_usage: true } }));
    assert.equal(streamed.status, 200, streamed.text);
    const events = sseData(streamed.text);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks[0].choices[0].delta.content, null, 'the role-only first delta passes through');
    assert.deepEqual(chunks.at(-1).choices, []);
    engineUsage.push(chunks.at(-1).usage);

    // Without include_usage the client sees no usage chunk, and the engine's counts are still billed.
    const quiet = await call('POST', '/v1/chat/completions', key, chat({ stream: true }));
    assert.equal(quiet.status, 200, quiet.text);
    const quietChunks = sseData(quiet.text).slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(quietChunks.every((c) => !c.usage && c.choices.length > 0), 'no usage chunk for the client');

    const rows = await tokenRows(6);
    assert.equal(rows.length, 6, `two rows per answer, once: ${JSON.stringify(rows)}`);
    const want = (k) => engineUsage.reduce((a, u) => a + u[k], 0);
    // The third answer is the same prompt: its counts are the streamed one's.
    assert.equal(sum(rows, 'input_tokens'), want('prompt_tokens') + engineUsage[1].prompt_tokens);
    assert.equal(sum(rows, 'output_tokens'), want('completion_tokens') + engineUsage[1].completion_tokens);
  });
});
