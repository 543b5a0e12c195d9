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

import { creditedTenant, request, smallFleetToml, spawnLandlord } from '../lib/landlord.mjs';
import { sseData, startLlamaServer } from '../lib/llama_server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.LANDLORD_BIN ?? path.join(HERE, '../../build/release/landlord'));
const ADMIN_KEY = 'engine-test-admin-key-0123456789';
const MODEL = 'random-llama';

// llama-server with `alias` and a `landlord serve` whose one upstream it is, with a tenant key
// holding $5.
async function startStack(alias) {
  const s = { alias };
  s.engine = await startLlamaServer({ bin: process.env.LLAMA_SERVER, model: process.env.LLAMA_MODEL, args: ['--alias', alias] });
  s.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-engine-'));
  const trace = path.join(s.dir, 'owner.csv');
  await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');
  const config = path.join(s.dir, 'landlord.toml');
  await fs.writeFile(
    config,
    `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${path.join(s.dir, 'data')}"\ntick_ms = 20\n` +
      `${smallFleetToml(trace)}[gateway]\nmeter_flush_ms = 5\n` +
      `[[gateway.upstreams]]\nmodel = "${alias}"\nurl = "${s.engine.url}"\n`,
  );
  s.serve = spawnLandlord(BIN, ['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: ADMIN_KEY } });
  s.url = await s.serve.url;
  s.call = (method, route, k, body) => request(s.url, method, route, k, body, 60_000);
  s.key = (await creditedTenant(s.call, ADMIN_KEY, 'engine')).key;
  s.stop = async () => {
    assert.deepEqual(await s.serve.stop(), { code: 0, signal: null }, 'serve exits 0');
    await s.engine.stop('SIGKILL');
    await fs.rm(s.dir, { recursive: true, force: true });
  };
  // The tenant's token usage rows, once `n` are there (usage commits a few ms after an answer).
  s.tokenRows = async (n) => {
    for (let i = 0; i < 250; ++i) {
      const r = await s.call('GET', '/v1/usage', s.key);
      assert.equal(r.status, 200, r.text);
      const rows = r.json.data.filter((u) => u.source === 'tokens');
      if (rows.length >= n) return rows;
      await sleep(20);
    }
    return assert.fail(`fewer than ${n} token usage rows`);
  };
  return s;
}

const sum = (rows, kind) => rows.filter((u) => u.kind === kind).reduce((a, u) => a + Number(u.quantity), 0);

describe('the gateway in front of llama-server', () => {
  let stack, call, key;
  before(async () => {
    stack = await startStack(MODEL);
    ({ call, key } = stack);
  });
  after(() => stack?.stop());

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

    const rows = await stack.tokenRows(6);
    assert.equal(rows.length, 6, `two rows per answer, once: ${JSON.stringify(rows)}`);
    const want = (k) => engineUsage.reduce((a, u) => a + u[k], 0);
    // The third answer is the same prompt: its counts are the streamed one's.
    assert.equal(sum(rows, 'input_tokens'), want('prompt_tokens') + engineUsage[1].prompt_tokens);
    assert.equal(sum(rows, 'output_tokens'), want('completion_tokens') + engineUsage[1].completion_tokens);
  });
});

describe('a llama-server SIGKILLed mid-stream behind the gateway', () => {
  let stack;
  before(async () => {
    stack = await startStack('doomed-llama');
  });
  after(() => stack?.stop());

  test('the stream ends with an error event and only the delivered tokens are billed', async () => {
    const res = await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'doomed-llama',
        messages: [{ role: 'user', content: 'Go on for a while.' }],
        max_tokens: 3000,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal: AbortSignal.timeout(60_000),
    });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let text = '';
    let killed = false;
    for await (const bytes of res.body) {
      text += decoder.decode(bytes, { stream: true });
      if (!killed && sseData(text).length >= 12) {
        stack.engine.proc.kill('SIGKILL');
        killed = true;
      }
    }
    assert.ok(killed, `the stream ended before 12 events: ${text}`);
    const events = sseData(text);
    assert.ok(!events.includes('[DONE]'), 'no [DONE] after a failure');
    const error = JSON.parse(events.at(-1));
    assert.equal(error.error.code, 'upstream_failed', events.at(-1));
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => !c.usage), 'no usage chunk on a failed stream');
    const delivered = chunks.filter((c) => c.choices.some((ch) => typeof ch.delta?.content === 'string' && ch.delta.content !== '')).length;
    assert.ok(delivered >= 10, `delivered ${delivered}`);
    const rows = await stack.tokenRows(2);
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.equal(sum(rows, 'output_tokens'), delivered, 'billed: the chunks with text, not the role-only first one');
  });
});
