// The model API gateway of `landlord serve`, end to end, with the official `openai` npm
// package as the client: a real `landlord serve` and real `landlord fake-model` replica
// processes on loopback (port 0), temp dirs, nothing else. Billing is read back from the
// server's own tenant API.
//
//   LANDLORD_BIN=build/dev/landlord node --test tests/node/gateway.test.mjs
//
// or tests/node/run.sh, which installs the client first.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

import { request, smallFleetToml, spawnLandlord as spawnLandlordAt } from '../lib/landlord.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.LANDLORD_BIN
  ? path.resolve(process.env.LANDLORD_BIN)
  : path.resolve(HERE, '../../build/release/landlord');
const ADMIN_KEY = 'node-test-admin-key-0123456789';
// Usage is committed by a group commit a few ms after a request ends (meter_flush_ms = 5).
const COMMIT_WAIT_MS = 50;
const USAGE_POLL_MS = 5_000;

if (!existsSync(BIN)) {
  throw new Error(`landlord binary not found at ${BIN}: build it, or set LANDLORD_BIN`);
}

// ---------------------------------------------------------------------------------------------
// Processes

const spawnLandlord = (args, opts) => spawnLandlordAt(BIN, args, opts);

const stopping = [];
after(async () => {
  for (const { url, exit } of await Promise.all(stopping)) {
    assert.deepEqual(exit, { code: 0, signal: null }, `landlord serve at ${url} exits 0 on SIGTERM`);
  }
});

// A temp dir, a set of `landlord fake-model` replicas and one `landlord serve` in front of them.
class Stack {
  // upstreams: [{ model, args: [...fake-model flags] }]; gateway: extra lines of [gateway].
  static async start({ upstreams = [], gateway = '' } = {}) {
    const s = new Stack();
    s.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-node-'));
    try {
      let upstreamToml = '';
      for (const u of upstreams) {
        const fake = spawnLandlord(['fake-model', '--listen', '127.0.0.1:0', '--model', u.model, ...(u.args ?? [])]);
        s.fakes.push(fake);
        upstreamToml += `[[gateway.upstreams]]\nmodel = "${u.model}"\nurl = "${await fake.url}"\n`;
      }
      const trace = path.join(s.dir, 'owner.csv');
      await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');
      const config = path.join(s.dir, 'landlord.toml');
      await fs.writeFile(
        config,
        `[server]
listen = "127.0.0.1:0"
data_dir = "${path.join(s.dir, 'data')}"
request_timeout_s = 1
tick_ms = 20
${smallFleetToml(trace, 'reserved_min_history_h = 24\n')}[gateway]
meter_flush_ms = 5
${gateway}
${upstreamToml}`,
      );
      s.serve = spawnLandlord(['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: ADMIN_KEY } });
      s.url = await s.serve.url;
      return s;
    } catch (e) {
      await s.stop().catch(() => {});
      throw e;
    }
  }

  constructor() {
    this.dir = null;
    this.fakes = [];
    this.serve = null;
    this.url = null;
  }

  get baseURL() {
    return `${this.url}/v1`;
  }

  // Stops everything; resolves to how `serve` exited (null when it never started).
  async stop() {
    const served = this.serve ? this.serve.stop() : Promise.resolve(null);
    await Promise.all(this.fakes.map((f) => f.stop('SIGKILL')));
    const exit = await served;
    if (this.dir) await fs.rm(this.dir, { recursive: true, force: true });
    return exit;
  }

  // `landlord serve` drains for a few seconds after SIGTERM, so the suites do not wait for it
  // one by one: each hands its stack here, and the file's last hook checks they all exited 0.
  stopLater() {
    stopping.push(this.stop().then((exit) => ({ url: this.url, exit })));
  }

  http(method, route, key, body) {
    return request(this.url, method, route, key, body, 10_000);
  }


  async admin(route, body, wantStatus) {
    const r = await this.http('POST', route, ADMIN_KEY, body);
    assert.equal(r.status, wantStatus, `POST ${route} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    return r.json;
  }

  // A new tenant with one API key and, when `credit` is given, that much prepaid balance.
  async tenant(name, credit) {
    const t = await this.admin('/admin/tenants', { name }, 201);
    assert.match(t.id, /^ten_/);
    const k = await this.admin('/admin/keys', { tenant_id: t.id }, 201);
    assert.match(k.key, /^ll_/);
    if (credit !== undefined) await this.admin('/admin/credits', { tenant_id: t.id, amount: credit }, 200);
    return { id: t.id, key: k.key };
  }

  async get(route, key) {
    const r = await this.http('GET', route, key);
    assert.equal(r.status, 200, `GET ${route} -> ${r.status} ${r.text}`);
    return r.json;
  }

  // The tenant's token usage records, once the group commit has run: after COMMIT_WAIT_MS, and
  // then, while there are fewer than `atLeast`, polled for up to USAGE_POLL_MS (a loaded
  // machine may commit late; the callers check the exact count).
  async tokenUsage(key, atLeast = 0) {
    await sleep(COMMIT_WAIT_MS);
    const deadline = performance.now() + USAGE_POLL_MS;
    for (;;) {
      const all = await this.get('/v1/usage', key);
      const tokens = all.data.filter((u) => u.source === 'tokens');
      if (tokens.length >= atLeast || performance.now() > deadline) return { all, tokens };
      await sleep(20);
    }
  }

  client(key, options = {}) {
    return new OpenAI({ apiKey: key, baseURL: this.baseURL, timeout: 10_000, ...options });
  }
}

// A fetch that records every HTTP attempt the SDK makes: when it started, when its headers came
// back, its status, and for an error its body (read from a clone; the SDK gets the original).
function recordingFetch() {
  const attempts = [];
  const wrapped = async (url, init) => {
    const a = { url: String(url), started: performance.now() };
    attempts.push(a);
    const res = await fetch(url, init);
    a.answered = performance.now();
    a.status = res.status;
    a.headers = res.headers;
    if (!res.ok) a.body = await res.clone().text();
    return res;
  };
  return { fetch: wrapped, attempts };
}

// "0.000008" -> 8; "1.00" -> 1000000.
function dollarsToMicros(s) {
  assert.match(s, /^\d+(\.\d{1,6})?$/, `not a dollar amount: ${s}`);
  const [whole, frac = ''] = s.split('.');
  return Number(whole) * 1_000_000 + Number(frac.padEnd(6, '0'));
}

const chat = (maxTokens, extra = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hello there' }],
  max_tokens: maxTokens,
  ...extra,
});

// ---------------------------------------------------------------------------------------------
// Tests

describe('model API through the openai SDK', () => {
  let stack;
  let tenant;
  let client;

  before(async () => {
    stack = await Stack.start({
      upstreams: [{ model: 'm', args: ['--tokens-per-s', '0'] }],
      gateway: 'rpm = 600\ntpm = 1000000',
    });
    tenant = await stack.tenant('acme', '1.00');
    client = stack.client(tenant.key, { maxRetries: 0 });
  });
  after(() => stack?.stopLater());

  test('models.list() lists the configured upstream model', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.deepEqual(ids, ['m']);
  });

  test('chat completion: content and usage', async () => {
    const { data, request_id } = await client.chat.completions.create(chat(5)).withResponse();
    assert.match(request_id, /^req_/);
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'm');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(typeof data.choices[0].message.content, 'string');
    assert.ok(data.choices[0].message.content.length > 0, 'empty content');
    assert.equal(data.choices[0].finish_reason, 'length');
    assert.ok(data.usage, 'no usage');
    assert.ok(data.usage.prompt_tokens > 0, JSON.stringify(data.usage));
    assert.equal(data.usage.completion_tokens, 5);
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  });

  test('streamed with include_usage: chunks, then a final chunk with usage', async () => {
    const stream = await client.chat.completions.create(
      chat(6, { stream: true, stream_options: { include_usage: true } }),
    );
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    const last = chunks.at(-1);
    assert.ok(last.usage, `last chunk has no usage: ${JSON.stringify(last)}`);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 6);
    assert.ok(last.usage.prompt_tokens > 0);
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    // Only the last chunk carries usage; the others carry the tokens.
    const body = chunks.slice(0, -1);
    for (const c of body) assert.equal(c.usage ?? null, null, JSON.stringify(c));
    const text = body.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0, 'no content streamed');
    assert.equal(body.filter((c) => c.choices[0]?.delta?.content).length, 6);
  });

  test('streamed without include_usage: no chunk carries usage', async () => {
    const stream = await client.chat.completions.create(chat(4, { stream: true }));
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.length > 0, 'no chunks');
    for (const c of chunks) {
      assert.equal(c.usage ?? null, null, `usage in ${JSON.stringify(c)}`);
      assert.equal(c.choices.length, 1, `chunk without a choice: ${JSON.stringify(c)}`);
    }
    assert.equal(chunks.filter((c) => c.choices[0].delta?.content).length, 4);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  });

  test('wrong key: AuthenticationError 401, not retried', async () => {
    const rec = recordingFetch();
    const bad = stack.client('ll_wrong_key_0000', { maxRetries: 2, fetch: rec.fetch });
    await assert.rejects(bad.chat.completions.create(chat(2)), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `not an AuthenticationError: ${err}`);
      assert.equal(err.status, 401);
      assert.equal(err.code, 'invalid_api_key');
      assert.match(err.requestID ?? '', /^req_/, 'no x-request-id on the 401');
      return true;
    });
    assert.equal(rec.attempts.length, 1);
    // The admin key is no tenant key either.
    const admin = stack.client(ADMIN_KEY, { maxRetries: 0 });
    await assert.rejects(admin.models.list(), OpenAI.AuthenticationError);
  });

  test('empty budget: RateLimitError insufficient_quota, and the SDK does not retry', async () => {
    const poor = await stack.tenant('poor', '0.000010');
    const rec = recordingFetch();
    const c = stack.client(poor.key, { maxRetries: 3, fetch: rec.fetch });
    await assert.rejects(c.chat.completions.create(chat(100)), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `not a RateLimitError: ${err}`);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'insufficient_quota');
      assert.equal(err.type, 'insufficient_quota');
      return true;
    });
    assert.equal(rec.attempts.length, 1, 'the SDK retried an insufficient_quota answer');
    assert.equal(rec.attempts[0].headers.get('x-should-retry'), 'false');
    assert.match(rec.attempts[0].headers.get('x-request-id') ?? '', /^req_/);
    // Nothing was billed or left held.
    const balance = await stack.get('/v1/balance', poor.key);
    assert.equal(dollarsToMicros(balance.credited), 10);
    assert.equal(dollarsToMicros(balance.charged), 0);
    assert.equal(dollarsToMicros(balance.held), 0);
    const { tokens } = await stack.tokenUsage(poor.key);
    assert.deepEqual(tokens, []);
  });

  test('usage reaches the invoice exactly once, as the SDK reported it', async () => {
    const payer = await stack.tenant('payer', '1.00');
    const c = stack.client(payer.key, { maxRetries: 0 });
    const reported = new Map(); // x-request-id -> usage the SDK saw
    const remember = (requestId, usage) => {
      assert.match(requestId ?? '', /^req_/);
      assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, JSON.stringify(usage));
      assert.ok(!reported.has(requestId), `request id ${requestId} seen twice`);
      reported.set(requestId, usage);
    };
    for (const n of [3, 7]) {
      const { data, request_id } = await c.chat.completions.create(chat(n)).withResponse();
      assert.equal(data.usage.completion_tokens, n);
      remember(request_id, data.usage);
    }
    for (const n of [2, 5]) {
      const { data: stream, request_id } = await c.chat.completions
        .create(chat(n, { stream: true, stream_options: { include_usage: true } }))
        .withResponse();
      let usage;
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
      assert.equal(usage?.completion_tokens, n);
      remember(request_id, usage);
    }
    {
      const { data, request_id } = await c.completions
        .create({ model: 'm', prompt: 'once upon a time', max_tokens: 4 })
        .withResponse();
      assert.equal(data.object, 'text_completion');
      assert.equal(data.usage.completion_tokens, 4);
      remember(request_id, data.usage);
    }
    const N = reported.size;
    assert.equal(N, 5);
    let wantIn = 0;
    let wantOut = 0;
    for (const u of reported.values()) {
      wantIn += u.prompt_tokens;
      wantOut += u.completion_tokens;
    }

    // Usage: exactly one input and one output record per request, under unique keys that name
    // the request, with the quantities the SDK was told.
    const { all, tokens } = await stack.tokenUsage(payer.key, 2 * N);
    assert.equal(all.has_more, false);
    assert.equal(tokens.length, 2 * N, JSON.stringify(tokens, null, 1));
    const keys = tokens.map((u) => u.key);
    assert.equal(new Set(keys).size, keys.length, `duplicate usage keys: ${keys}`);
    for (const [rid, usage] of reported) {
      const mine = tokens.filter((u) => u.key.split(':')[0] === rid);
      assert.equal(mine.length, 2, `usage records of ${rid}: ${JSON.stringify(mine)}`);
      const input = mine.find((u) => u.kind === 'input_tokens');
      const output = mine.find((u) => u.kind === 'output_tokens');
      assert.ok(input && output, JSON.stringify(mine));
      assert.equal(input.quantity, usage.prompt_tokens, `${rid} input`);
      assert.equal(output.quantity, usage.completion_tokens, `${rid} output`);
    }
    const usageMicros = tokens.reduce((s, u) => s + u.amount_micros, 0);
    assert.ok(usageMicros > 0);

    // The invoice of that period counts the same tokens, once.
    const period = all.period;
    assert.match(period, /^\d{4}-\d{2}$/);
    const readInvoice = async () => {
      const inv = await stack.get(`/v1/invoices/${period}`, payer.key);
      const sum = (kind) =>
        inv.items.filter((i) => i.kind === kind && i.model === 'm').reduce((s, i) => s + i.tokens, 0);
      return { inv, input: sum('input_tokens'), output: sum('output_tokens') };
    };
    const first = await readInvoice();
    assert.equal(first.input, wantIn, JSON.stringify(first.inv));
    assert.equal(first.output, wantOut, JSON.stringify(first.inv));
    assert.equal(first.inv.total_micros, usageMicros);
    const listed = await stack.get('/v1/invoices', payer.key);
    const entry = (listed.items ?? listed.data ?? []).find((i) => i.period === period);
    assert.ok(entry, `period ${period} missing from ${JSON.stringify(listed)}`);
    assert.equal(entry.total_micros, usageMicros);
    const balance = await stack.get('/v1/balance', payer.key);
    assert.equal(dollarsToMicros(balance.charged), usageMicros);
    assert.equal(dollarsToMicros(balance.held), 0);

    // Later reads count nothing twice.
    await sleep(200);
    const again = await readInvoice();
    assert.equal(again.input, wantIn);
    assert.equal(again.output, wantOut);
    assert.equal(again.inv.total_micros, usageMicros);
    assert.equal((await stack.tokenUsage(payer.key)).tokens.length, 2 * N);
  });
});

describe('rate limits through the openai SDK', () => {
  let stack;
  before(async () => {
    // A bucket of 60 requests that refills one a second.
    stack = await Stack.start({
      upstreams: [{ model: 'm', args: ['--tokens-per-s', '0'] }],
      gateway: 'rpm = 60\ntpm = 1000000',
    });
  });
  after(() => stack?.stopLater());

  test('a 429 rate_limit_exceeded is retried after retry-after-ms, then succeeds', async () => {
    const t = await stack.tenant('busy', '1.00');
    // Drain the key's bucket without retries until it answers 429 with a wait long enough that
    // the next request is sure to be limited too.
    const drain = stack.client(t.key, { maxRetries: 0 });
    let ok = 0;
    let limited = null;
    for (let i = 0; i < 300 && limited === null; i++) {
      try {
        await drain.chat.completions.create(chat(1));
        ok++;
      } catch (err) {
        assert.ok(err instanceof OpenAI.RateLimitError, `not a RateLimitError: ${err}`);
        assert.equal(err.status, 429);
        assert.equal(err.code, 'rate_limit_exceeded');
        const ms = Number(err.headers.get('retry-after-ms'));
        assert.ok(ms > 0 && ms <= 1000, `retry-after-ms ${err.headers.get('retry-after-ms')}`);
        assert.ok(Number(err.headers.get('retry-after')) >= 1, `retry-after ${err.headers.get('retry-after')}`);
        if (ms >= 150) limited = ms;
      }
    }
    assert.ok(limited !== null, `never limited after ${ok} requests`);
    assert.ok(ok >= 60, `limited after only ${ok} requests with rpm = 60`);

    const rec = recordingFetch();
    const c = stack.client(t.key, { maxRetries: 3, fetch: rec.fetch });
    const res = await c.chat.completions.create(chat(2));
    assert.equal(res.usage.completion_tokens, 2);
    const statuses = rec.attempts.map((a) => a.status);
    assert.equal(statuses[0], 429, `attempts: ${statuses}`);
    assert.equal(statuses.at(-1), 200, `attempts: ${statuses}`);
    assert.ok(statuses.length >= 2 && statuses.length <= 4, `attempts: ${statuses}`);
    for (let i = 0; i + 1 < rec.attempts.length; i++) {
      const a = rec.attempts[i];
      assert.equal(a.status, 429);
      assert.equal(JSON.parse(a.body).error.code, 'rate_limit_exceeded');
      assert.match(a.headers.get('x-request-id') ?? '', /^req_/);
      const wait = Number(a.headers.get('retry-after-ms'));
      const waited = rec.attempts[i + 1].started - a.answered;
      assert.ok(waited >= wait - 2, `retried after ${waited.toFixed(1)} ms, asked to wait ${wait} ms`);
    }
  });
});

describe('a replica failing mid-stream', () => {
  let stack;
  before(async () => {
    stack = await Stack.start({
      upstreams: [{ model: 'm', args: ['--tokens-per-s', '0', '--crash-after-tokens', '3'] }],
      gateway: 'rpm = 600\ntpm = 1000000',
    });
  });
  after(() => stack?.stopLater());

  test('the SDK raises an APIError while iterating, after the delivered chunks', async () => {
    const t = await stack.tenant('unlucky', '1.00');
    const c = stack.client(t.key, { maxRetries: 0 });
    const stream = await c.chat.completions.create(
      chat(10, { stream: true, stream_options: { include_usage: true } }),
    );
    const chunks = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) chunks.push(chunk);
      })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
        assert.equal(err.code, 'upstream_failed', JSON.stringify(err.error));
        return true;
      },
    );
    assert.equal(chunks.filter((ch) => ch.choices[0]?.delta?.content).length, 3, JSON.stringify(chunks));
    assert.ok(chunks.every((ch) => !ch.usage), 'a usage chunk on a failed stream');
    // The replica really died, and only the delivered tokens were billed.
    const fake = await Promise.race([stack.fakes[0].exited, sleep(5000, 'still running')]);
    assert.notEqual(fake, 'still running', 'the fake replica did not exit');
    const { tokens } = await stack.tokenUsage(t.key, 2);
    assert.equal(tokens.length, 2, JSON.stringify(tokens));
    assert.equal(tokens.find((u) => u.kind === 'output_tokens')?.quantity, 3);
  });
});

describe('the Responses API through the openai SDK', () => {
  let stack;
  before(async () => {
    stack = await Stack.start({
      upstreams: [
        { model: 'm', args: ['--tokens-per-s', '0'] },
        { model: 'doomed', args: ['--tokens-per-s', '0', '--crash-after-tokens', '3'] },
      ],
      gateway: 'rpm = 600\ntpm = 1000000',
    });
  });
  after(() => stack?.stopLater());

  test('responses.create plain and streamed, billed once like chat', async () => {
    const t = await stack.tenant('responses', '1.00');
    const c = stack.client(t.key, { maxRetries: 0 });
    const r = await c.responses.create({ model: 'm', input: 'hello there', max_output_tokens: 5 });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    assert.ok(r.output_text.length > 0, JSON.stringify(r));
    assert.equal(r.status, 'incomplete');
    assert.equal(r.usage.output_tokens, 5);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + 5);

    const stream = await c.responses.create({
      model: 'm',
      instructions: 'be brief',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'hello there' }] }],
      max_output_tokens: 4,
      stream: true,
    });
    const events = [];
    for await (const ev of stream) events.push(ev);
    assert.equal(events[0].type, 'response.created');
    assert.equal(events.at(-1).type, 'response.incomplete');
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    assert.equal(deltas.length, 4);
    const final = events.at(-1).response;
    assert.equal(final.output[0].content[0].text, deltas.map((d) => d.delta).join(''));
    assert.equal(final.usage.output_tokens, 4);
    assert.equal(final.instructions, 'be brief');

    const { tokens } = await stack.tokenUsage(t.key, 4);
    assert.equal(tokens.length, 4, JSON.stringify(tokens));
    const sum = (kind) => tokens.filter((u) => u.kind === kind).reduce((a, u) => a + Number(u.quantity), 0);
    assert.equal(sum('input_tokens'), r.usage.input_tokens + final.usage.input_tokens);
    assert.equal(sum('output_tokens'), 9);
  });

  test('refused like chat: a field it cannot translate (400 naming it), an empty budget (429)', async () => {
    const t = await stack.tenant('responses-poor', '0.000010');
    const c = stack.client(t.key, { maxRetries: 0 });
    await assert.rejects(
      c.responses.create({ model: 'm', input: 'hi', tools: [{ type: 'function', name: 'f', parameters: {} }] }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err}`);
        assert.equal(err.param, 'tools');
        return true;
      },
    );
    await assert.rejects(c.responses.create({ model: 'm', input: 'hi', max_output_tokens: 100 }), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `not a RateLimitError: ${err}`);
      assert.equal(err.code, 'insufficient_quota');
      return true;
    });
  });

  test('a replica failing mid-stream: the SDK raises the error event, only delivered tokens billed', async () => {
    const t = await stack.tenant('responses-unlucky', '1.00');
    const c = stack.client(t.key, { maxRetries: 0 });
    const stream = await c.responses.create({ model: 'doomed', input: 'hello there', max_output_tokens: 10, stream: true });
    const events = [];
    await assert.rejects(
      (async () => {
        for await (const ev of stream) events.push(ev);
      })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
        assert.equal(err.code, 'upstream_failed', JSON.stringify(err.error));
        return true;
      },
    );
    assert.equal(events.filter((e) => e.type === 'response.output_text.delta').length, 3);
    assert.ok(!events.some((e) => e.type === 'response.completed' || e.type === 'response.incomplete'));
    const { tokens } = await stack.tokenUsage(t.key, 2);
    assert.equal(tokens.length, 2, JSON.stringify(tokens));
    assert.equal(tokens.find((u) => u.kind === 'output_tokens')?.quantity, 3);
  });
});

describe('simulated replicas (no upstreams configured)', () => {
  let stack;
  before(async () => {
    stack = await Stack.start();
  });
  after(() => stack?.stopLater());

  test('serve the default model', async () => {
    const t = await stack.tenant('sim', '1.00');
    const c = stack.client(t.key, { maxRetries: 0 });
    const ids = [];
    for await (const m of c.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['landlord-sim-8b']);
    const res = await c.chat.completions.create({ ...chat(3), model: ids[0] });
    assert.equal(res.usage.completion_tokens, 3);
    assert.ok(res.choices[0].message.content.length > 0);
  });
});
