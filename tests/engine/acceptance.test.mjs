// Issue 18's acceptance, with real llama.cpp `llama-server` replicas that `landlord serve`
// itself starts from its config (`[[gateway.engines]]`) and places on the sim fleet: the
// official `openai` npm SDK (tests/node's pinned one) does chat plain and streamed with
// include_usage and `responses.create` plain and streamed; each answer is billed exactly once
// with the engine's own counts (usage rows and the balance); a replica SIGKILLed mid-stream ends
// the stream with an error the SDK raises and bills only the delivered tokens; an owner reclaim
// (an internal job through the admin API) drains a real replica (its streams in flight finish,
// new requests go to the other) and then stops its server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI, { APIError } from '../node/node_modules/openai/index.mjs';

import { smallFleetToml } from '../lib/landlord.mjs';
import { replicaPid, startServeWithEngines, until } from '../lib/llama_server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.LANDLORD_BIN ?? path.join(HERE, '../../build/release/landlord'));
const ADMIN_KEY = 'engine-acceptance-admin-key-0123456789';
const MODEL = 'random-llama';
const CREDIT_MICROS = 5_000_000;
// $1 and $2 per million tokens: 1 and 2 micro-dollars a token, so amounts are exact.
const IN_MICROS = 1;
const OUT_MICROS = 2;

describe('landlord serve with real llama-server replicas (issue 18 acceptance)', () => {
  const s = {};
  before(async () => {
    await startServeWithEngines(s, { bin: BIN, adminKey: ADMIN_KEY, tenant: 'acceptance', model: MODEL,
      gpusPerReplica: 8, ctx: 4096, serverToml: 'tick_ms = 20\n',
      // At 4x a replica's drain (the 20 s notice) lasts 5 s of wall time.
      fleetToml: (trace) => `${smallFleetToml(trace, '', 4)}` +
        `[prices.models."${MODEL}"]\ninput_per_mtok = "1.00"\noutput_per_mtok = "2.00"\n` +
        `[gateway]\nmeter_flush_ms = 5\n` });
    s.client = new OpenAI({ apiKey: s.key, baseURL: `${s.url}/v1`, maxRetries: 0, timeout: 120_000 });
    // Both replicas placed on the fleet and their servers answering /health (routed from then on).
    await until('two engine replicas serving', async () => {
      const m = await fetch(`${s.url}/metrics`).then((r) => r.text());
      return (m.match(/landlord_gateway_replica_outstanding_tokens\{replica="rep_eng/g) ?? []).length >= 2;
    });
  });
  after(async () => {
    if (s.serve) assert.deepEqual(await s.serve.stop(), { code: 0, signal: null }, 'serve exits 0');
    // serve stops its engines: none is left behind.
    assert.equal(await replicaPid(s.logs, 'rep_eng1'), null);
    if (s.dir) await fs.rm(s.dir, { recursive: true, force: true });
  });

  // The tenant's token usage rows once `n` are there (usage commits a few ms after an answer).
  const tokenRows = (n) =>
    until(`${n} token usage rows`, async () => {
      const r = await s.call('GET', '/v1/usage', s.key);
      assert.equal(r.status, 200, r.text);
      const rows = r.json.data.filter((u) => u.source === 'tokens');
      return rows.length >= n && rows;
    });
  const sum = (rows, kind, field = 'quantity') =>
    rows.filter((u) => u.kind === kind).reduce((a, u) => a + Number(u[field]), 0);
  const billed = { input: 0, output: 0, rows: 0 };

  test('the openai SDK: chat and responses, plain and streamed, billed once with the engine`s counts', async () => {
    const messages = [{ role: 'user', content: 'Tell me about harvesting idle GPUs.' }];
    const plain = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0 });
    assert.equal(plain.object, 'chat.completion');
    assert.equal(plain.usage.completion_tokens, 6);
    const engine = [plain.usage];

    const stream = await s.client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamedText = '';
    let streamedUsage = null;
    for await (const chunk of stream) {
      streamedText += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) streamedUsage = chunk.usage;
    }
    assert.ok(streamedUsage, 'the usage chunk reached the client');
    assert.equal(streamedText, plain.choices[0].message.content, 'temperature 0: the same text');
    engine.push(streamedUsage);

    // The Responses API: the same prompt as `input` is the same chat prompt to the engine.
    const r = await s.client.responses.create({ model: MODEL, input: messages[0].content, max_output_tokens: 6, temperature: 0 });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    assert.equal(r.output_text, plain.choices[0].message.content, 'the SDK`s output_text is the engine`s text');
    assert.equal(r.status, 'incomplete', 'stopped at max_output_tokens');
    assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(r.usage.input_tokens, plain.usage.prompt_tokens);
    assert.equal(r.usage.output_tokens, plain.usage.completion_tokens);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);

    const rs = await s.client.responses.create({
      model: MODEL,
      input: [{ role: 'user', content: [{ type: 'input_text', text: messages[0].content }] }],
      max_output_tokens: 6,
      temperature: 0,
      stream: true,
    });
    const types = [];
    let deltas = '';
    let final = null;
    for await (const ev of rs) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') deltas += ev.delta;
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
    }
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.incomplete');
    assert.ok(types.includes('response.output_text.delta'), types.join(' '));
    assert.equal(deltas, plain.choices[0].message.content);
    assert.equal(final.output[0].content[0].text, deltas);
    assert.equal(final.usage.input_tokens, plain.usage.prompt_tokens);
    assert.equal(final.usage.output_tokens, 6);

    // Billed exactly once each: two rows per answer, their sums the engine's counts.
    const want = {
      input: engine.reduce((a, u) => a + u.prompt_tokens, 0) + 2 * plain.usage.prompt_tokens,
      output: engine.reduce((a, u) => a + u.completion_tokens, 0) + 2 * plain.usage.completion_tokens,
    };
    const rows = await tokenRows(8);
    assert.equal(rows.length, 8, JSON.stringify(rows));
    assert.equal(sum(rows, 'input_tokens'), want.input);
    assert.equal(sum(rows, 'output_tokens'), want.output);
    assert.equal(sum(rows, 'input_tokens', 'amount_micros'), want.input * IN_MICROS);
    assert.equal(sum(rows, 'output_tokens', 'amount_micros'), want.output * OUT_MICROS);
    const bal = await s.call('GET', '/v1/balance', s.key);
    assert.equal(bal.status, 200, bal.text);
    assert.equal(bal.json.available_micros, CREDIT_MICROS - want.input * IN_MICROS - want.output * OUT_MICROS, bal.text);
    Object.assign(billed, { input: want.input, output: want.output, rows: 8 });
  });

  test('an owner reclaim drains a real replica: its streams finish, then its server stops', async () => {
    // A stream in flight on each replica (each prompt's prefix prefers one of them).
    const streams = new Map();
    for (let i = 0; streams.size < 2; ++i) {
      assert.ok(i < 16, 'streams on both replicas');
      const { data, response } = await s.client.chat.completions
        .create({
          model: MODEL,
          messages: [{ role: 'user', content: `Stream number ${i}, please.` }],
          max_tokens: 40,  // well within the drain: about 0.1 s on an idle core
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        })
        .withResponse();
      const replica = response.headers.get('x-landlord-replica');
      const consume = async () => {
        let usage = null;
        for await (const chunk of data) usage = chunk.usage ?? usage;
        return usage;
      };
      if (streams.has(replica)) {
        await consume();  // billed like any other
      } else {
        streams.set(replica, consume());
      }
      billed.rows += 2;
    }
    // 8 GPUs are free and each replica holds 8: 16 for the owner takes one replica's GPUs.
    const job = await s.call('POST', '/admin/internal-jobs', ADMIN_KEY, { gpus: 16, duration_s: 600 });
    assert.equal(job.status, 201, job.text);
    const drained = await until('a replica draining', async () => {
      const f = await s.call('GET', '/admin/fleet', ADMIN_KEY);
      const holders = f.json.nodes.flatMap((n) => n.holders);
      return holders.find((h) => h.class === 'inference' && h.state === 'draining')?.replica;
    });
    assert.ok(streams.has(drained), `${drained} is one of ${[...streams.keys()]}`);
    // Draining: new requests go to the other replica; the streams in flight finish whole.
    const res = await s.call('POST', '/v1/chat/completions', s.key, {
      model: MODEL,
      messages: [{ role: 'user', content: 'still there?' }],
      max_tokens: 2,
    });
    assert.equal(res.status, 200, res.text);
    assert.notEqual(res.headers.get('x-landlord-replica'), drained);
    billed.rows += 2;
    for (const [replica, done] of streams) {
      const usage = await done;
      assert.equal(usage?.completion_tokens, 40, `the stream on ${replica} finished whole`);
    }
    // At reclaim_at the replica stops: its server gets SIGTERM and exits.
    assert.ok(await replicaPid(s.logs, drained), `${drained}'s server runs until reclaim_at`);
    await until(`${drained}'s llama-server to exit`, async () => (await replicaPid(s.logs, drained)) === null);
    await until(`${drained} gone from the fleet`, async () => {
      const f = await s.call('GET', '/admin/fleet', ADMIN_KEY);
      return !f.json.nodes.some((n) => n.holders.some((h) => h.replica === drained));
    });
  });

  test('a replica SIGKILLed mid-stream: the SDK raises the error event, only delivered tokens billed', async () => {
    const { data: stream, response } = await s.client.responses
      .create({ model: MODEL, input: 'Go on for a while.', max_output_tokens: 3000, temperature: 0, stream: true })
      .withResponse();
    const replica = response.headers.get('x-landlord-replica');
    const pid = await replicaPid(s.logs, replica);
    assert.ok(pid, `the pid of ${replica}`);
    let delivered = 0;
    let error = null;
    try {
      for await (const ev of stream) {
        if (ev.type === 'response.output_text.delta' && ++delivered === 10) process.kill(pid, 'SIGKILL');
      }
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof APIError, `the SDK raised: ${error}`);
    assert.equal(error.code, 'upstream_failed', error.message);
    assert.ok(delivered >= 10, `delivered ${delivered}`);
    const rows = await tokenRows(billed.rows + 2);
    assert.equal(rows.length, billed.rows + 2, JSON.stringify(rows));
    // Billed in time order: the last two rows are this stream's.
    const last = rows.slice(-2);
    assert.equal(sum(last, 'output_tokens'), delivered, 'one output token per delivered delta');
  });
});
