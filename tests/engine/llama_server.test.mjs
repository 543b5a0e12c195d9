// A real llama.cpp `llama-server` (built by scripts/llama.sh from the pinned node-llama-cpp
// package's llama.cpp source) on the random-weight model, on CPU with one thread: the shapes of
// what it answers, which the gateway has to take (issue 18). Its text is gibberish; the wire
// format is the engine's own.
//
//   LLAMA_SERVER=... LLAMA_MODEL=... node --test tests/engine/llama_server.test.mjs
//
// or tests/engine/run.sh, which builds both first. With LL_RECORD_FIXTURES=1 it rewrites the
// recorded responses under tests/gateway/fixtures/llama_server/ (the gateway's parser tests).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { sseData, startLlamaServer } from '../lib/llama_server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(HERE, '../gateway/fixtures/llama_server');
const { LLAMA_SERVER, LLAMA_MODEL } = process.env;
if (!LLAMA_SERVER || !LLAMA_MODEL) throw new Error('set LLAMA_SERVER and LLAMA_MODEL (tests/engine/run.sh does)');

const MAX_TOKENS = 8;
const CHAT = {
  model: 'random-llama',
  messages: [{ role: 'user', content: 'Say hello to the landlord gateway.' }],
  max_tokens: MAX_TOKENS,
  temperature: 0,
  seed: 7,
};

async function record(name, text) {
  if (process.env.LL_RECORD_FIXTURES !== '1') return;
  await fs.mkdir(FIXTURES, { recursive: true });
  await fs.writeFile(path.join(FIXTURES, name), text);
}

async function post(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
}

function assertUsage(usage, what) {
  assert.ok(usage && typeof usage === 'object', `${what}: usage is an object`);
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `${what}: prompt_tokens > 0`);
  assert.ok(
    Number.isInteger(usage.completion_tokens) && usage.completion_tokens >= 1 && usage.completion_tokens <= MAX_TOKENS,
    `${what}: 1 <= completion_tokens <= max_tokens`,
  );
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, `${what}: total_tokens`);
}

describe('llama-server on the random-weight model (-t 1)', () => {
  let server;
  before(async () => {
    server = await startLlamaServer({ bin: LLAMA_SERVER, model: LLAMA_MODEL, args: ['--alias', 'random-llama'] });
  });
  after(async () => {
    if (server) assert.deepEqual(await server.stop(), { code: 0, signal: null }, 'llama-server exits 0 on SIGTERM');
  });

  test('/health: 200 once loaded, and only 503 before', async () => {
    assert.equal(server.health.at(-1).status, 200);
    for (const h of server.health.slice(0, -1)) {
      assert.equal(h.status, 503, `before ready: ${JSON.stringify(h)}`);
      await record('health_loading.json', h.body);
    }
    const res = await fetch(`${server.url}/health`);
    const body = await res.text();
    assert.deepEqual(JSON.parse(body), { status: 'ok' });
    await record('health_ok.json', body);
  });

  test('/v1/models: both `models` and `data`', async () => {
    const res = await fetch(`${server.url}/v1/models`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const body = JSON.parse(text);
    assert.ok(Array.isArray(body.models) && body.models.length === 1, 'models: one entry (llama.cpp`s own)');
    assert.ok(Array.isArray(body.data) && body.data.length === 1, 'data: one entry (OpenAI`s)');
    assert.equal(body.object, 'list');
    assert.equal(body.data[0].object, 'model');
    assert.equal(typeof body.data[0].id, 'string');
    await record('models.json', text);
  });

  test('chat completion, plain: usage and the extra `timings`', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, CHAT);
    assert.equal(res.status, 200, res.text);
    assert.match(res.contentType, /^application\/json/);
    const body = JSON.parse(res.text);
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.choices.length, 1);
    assert.equal(body.choices[0].message.role, 'assistant');
    assert.equal(typeof body.choices[0].message.content, 'string');
    assert.ok(['length', 'stop'].includes(body.choices[0].finish_reason), body.choices[0].finish_reason);
    assertUsage(body.usage, 'plain');
    assert.equal(body.choices[0].finish_reason === 'length', body.usage.completion_tokens === MAX_TOKENS);
    assert.ok(body.timings && typeof body.timings.predicted_n === 'number', 'timings: an extra object');
    assert.equal(body.timings.predicted_n, body.usage.completion_tokens);
    await record('chat.json', res.text);
  });

  test('chat completion, streamed with include_usage: null first content, usage chunk with no choices', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, {
      ...CHAT,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(res.status, 200, res.text);
    assert.match(res.contentType, /^text\/event-stream/);
    const events = sseData(res.text);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    // The first delta names the role; its content may be null rather than "" or absent.
    const first = chunks[0].choices[0].delta;
    assert.equal(first.role, 'assistant');
    assert.ok(first.content === null || first.content === undefined || typeof first.content === 'string');
    // The last chunk carries the usage (and timings) with `choices: []`; no other has usage.
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assertUsage(last.usage, 'streamed');
    assert.ok(last.timings && typeof last.timings.prompt_n === 'number', 'timings on the usage chunk');
    for (const c of chunks.slice(0, -1)) assert.ok(!c.usage, `only the last chunk has usage: ${JSON.stringify(c)}`);
    const finished = chunks.filter((c) => c.choices.some((ch) => ch.finish_reason));
    assert.equal(finished.length, 1, 'one chunk with a finish_reason');
    const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content)).filter((t) => typeof t === 'string');
    assert.ok(content.length <= last.usage.completion_tokens, 'at most one content delta per completion token');
    await record('chat_stream.sse', res.text);
  });
});
