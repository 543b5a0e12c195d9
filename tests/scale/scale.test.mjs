// Scale-out on one PostgreSQL database (issue 8): 2 `landlord serve` (one leads, the other
// stands by) and 3 standalone `landlord gateway` processes that follow whichever one leads,
// all on loopback (port 0), temp dirs. Checks, under concurrent load spread over the gateways:
// token limits and budgets are never exceeded (they are kept once, by the leader, not once per
// gateway); every answered request is billed exactly once; and a SIGKILL of the leader: the
// standby leads within 10 s, with every acknowledged lease and lease event, and the gateways
// go on against it.
//
//   bash tests/scale/run.sh          (starts the throwaway PostgreSQL server, then this file)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { request, smallFleetToml, spawnLandlord as spawnLandlordAt } from '../lib/landlord.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.LANDLORD_BIN
  ? path.resolve(process.env.LANDLORD_BIN)
  : path.resolve(HERE, '../../build/release/landlord');
const PG = process.env.LL_PG_URL;
const PSQL = path.join(process.env.LL_PG_BIN ?? '/usr/bin', 'psql');
const ADMIN_KEY = 'scale-test-admin-key-0123456789';
const MODEL = 'scale-sim';
// The prices the config sets: $ per million tokens.
const INPUT_PER_MTOK = 100;
const OUTPUT_PER_MTOK = 1000;
const MAX_TOKENS = 100;

if (!existsSync(BIN)) throw new Error(`landlord binary not found at ${BIN}: build it, or set LANDLORD_BIN`);
if (!PG) throw new Error('LL_PG_URL is not set: run tests/scale/run.sh, which starts PostgreSQL');

const spawnLandlord = (args, opts = {}) =>
  spawnLandlordAt(BIN, args, { ...opts, env: { LANDLORD_ADMIN_KEY: ADMIN_KEY, ...(opts.env ?? {}) } });

const call = (base, method, route, key, body) => request(base, method, route, key, body);

// One chat completion through a gateway; never throws (a refused connection is status 0).
async function chat(base, key, content) {
  try {
    return await call(base, 'POST', '/v1/chat/completions', key, {
      model: MODEL,
      messages: [{ role: 'user', content }],
      max_tokens: MAX_TOKENS,
    });
  } catch (e) {
    return { status: 0, error: String(e) };
  }
}

// The lease's events so far (past events come first on the stream): [{seq, type}].
async function leaseEvents(base, key, id) {
  const ctl = new AbortController();
  const res = await fetch(`${base}/v1/leases/${id}/events`, {
    headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    signal: ctl.signal,
  });
  assert.equal(res.status, 200, `GET /v1/leases/${id}/events`);
  let text = '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const stop = setTimeout(() => ctl.abort(), 1_500);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // aborted: what came is what the server had
  } finally {
    clearTimeout(stop);
  }
  const events = [];
  for (const block of text.split('\n\n')) {
    const id = /^id: (\d+)$/m.exec(block);
    const type = /^event: (\S+)$/m.exec(block);
    if (id && type) events.push({ seq: Number(id[1]), type: type[1] });
  }
  return events;
}

async function waitFor(what, fn, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const cluster = {};

before(async () => {
  cluster.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-scale-'));
  const trace = path.join(cluster.dir, 'owner.csv');
  await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');
  const common = `[prices]
input_per_mtok = "${INPUT_PER_MTOK}"
output_per_mtok = "${OUTPUT_PER_MTOK}"
[gateway]
rpm = 100000
tpm = 100000000
meter_flush_ms = 5
slice_ttl_ms = 3000
slice_idle_ms = 1500
[[gateway.sim_models]]
model = "${MODEL}"
replicas = 2
gpus_per_replica = 0
tokens_per_s = 0
first_token_ms = 0
`;
  cluster.serveConfig = path.join(cluster.dir, 'serve.toml');
  await fs.writeFile(
    cluster.serveConfig,
    `[server]
listen = "127.0.0.1:0"
tick_ms = 20
${smallFleetToml(trace)}${common}`,
  );
  const gatewayConfig = path.join(cluster.dir, 'gateway.toml');
  cluster.gatewayConfig = gatewayConfig;
  await fs.writeFile(gatewayConfig, `[server]\nlisten = "127.0.0.1:0"\n${common}`);

  const serve = (name) =>
    spawnLandlord(['serve', '--config', cluster.serveConfig, '--store', PG, '--data-dir', path.join(cluster.dir, name)], {
      startTimeoutMs: 600_000,  // a standby prints its address only when it takes over
    });
  cluster.leader = serve('a');
  cluster.leaderUrl = await cluster.leader.url;
  cluster.standby = serve('b');
  cluster.standby.url.catch(() => {});  // awaited in the failover test; not a crash if it never leads
  await waitFor('the second server to stand by', () => cluster.standby.output().stderr.includes('standby'), 15_000);
  cluster.gateways = [0, 1, 2].map(() => spawnLandlord(['gateway', '--store', PG, '--config', gatewayConfig]));
  cluster.gatewayUrls = await Promise.all(cluster.gateways.map((g) => g.url));
});

after(async () => {
  const procs = [cluster.leader, cluster.standby, cluster.third, cluster.doomed, ...(cluster.gateways ?? [])].filter(Boolean);
  await Promise.all(procs.map((p) => p.stop()));
  if (cluster.dir) await fs.rm(cluster.dir, { recursive: true, force: true });
});

// A tenant with a key (its own limits) and a prepaid credit, made on the leader.
async function tenant(name, { rpm = 0, tpm = 0, credit = '1000.00' } = {}) {
  const base = cluster.leaderUrl;
  const t = await call(base, 'POST', '/admin/tenants', ADMIN_KEY, { name });
  assert.equal(t.status, 201, t.text);
  const k = await call(base, 'POST', '/admin/keys', ADMIN_KEY, { tenant_id: t.json.id, rpm, tpm });
  assert.equal(k.status, 201, k.text);
  const c = await call(base, 'POST', '/admin/credits', ADMIN_KEY, { tenant_id: t.json.id, amount: credit });
  assert.equal(c.status, 200, c.text);
  return { id: t.json.id, key: k.json.key };
}

// `n` requests at once, dealt round-robin over the gateways.
async function burst(key, n, tag) {
  return Promise.all(
    Array.from({ length: n }, (_, i) => chat(cluster.gatewayUrls[i % cluster.gatewayUrls.length], key, `${tag} ${i}`)),
  );
}

// The tenant's billed token usage (every page), read from the leader.
async function usageOf(base, key) {
  const records = [];
  let after = '';
  for (;;) {
    const r = await call(base, 'GET', `/v1/usage?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ''}`, key);
    assert.equal(r.status, 200, r.text);
    records.push(...r.json.data);
    if (!r.json.has_more) break;
    after = r.json.next;
  }
  return records.filter((u) => u.source === 'tokens');
}

// Every answered request is in the usage exactly once (an input and an output record under its
// request id), nothing else is, and the token totals match what the answers reported.
function assertBilledOnce(answered, usage) {
  const byRequest = new Map();
  for (const u of usage) {
    const id = u.key.split(':')[0];
    byRequest.set(id, (byRequest.get(id) ?? 0) + 1);
  }
  const ids = answered.map((r) => r.headers.get('x-request-id'));
  assert.equal(new Set(ids).size, ids.length, 'request ids are unique across gateways');
  for (const id of ids) assert.equal(byRequest.get(id), 2, `request ${id}: an input and an output record, once`);
  assert.equal(byRequest.size, ids.length, 'no usage without an answered request');
  const sum = (kind) => usage.filter((u) => u.kind === kind).reduce((a, u) => a + u.quantity, 0);
  assert.equal(sum('input_tokens'), answered.reduce((a, r) => a + r.json.usage.prompt_tokens, 0));
  assert.equal(sum('output_tokens'), answered.reduce((a, r) => a + r.json.usage.completion_tokens, 0));
}

async function settled(base, key) {
  return waitFor('every hold to settle', async () => {
    const b = await call(base, 'GET', '/v1/balance', key);
    return b.status === 200 && Number(b.json.held) === 0 ? b.json : null;
  });
}

describe('three gateways, one leader, one standby, one PostgreSQL', () => {
  test('a token limit holds across the gateways (no "limit x gateways")', async () => {
    const TPM = 2_000;
    const t = await tenant('limited', { rpm: 100_000, tpm: TPM });
    const started = Date.now();
    const answers = await burst(t.key, 60, 'limit');
    const elapsedMin = (Date.now() - started) / 60_000;
    const ok = answers.filter((r) => r.status === 200);
    const limited = answers.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, answers.length, `only 200 and 429: ${answers.map((r) => r.status)}`);
    for (const r of limited) {
      assert.equal(r.json.error.code, 'rate_limit_exceeded');
      assert.ok(Number(r.headers.get('retry-after')) >= 1, 'retry-after');
    }
    const used = ok.reduce((a, r) => a + r.json.usage.total_tokens, 0);
    // The bucket starts full and refills continuously: what the whole burst may use.
    const allowance = TPM * (1 + elapsedMin);
    assert.ok(ok.length > 0 && limited.length > 0, `some admitted (${ok.length}), some limited (${limited.length})`);
    assert.ok(used <= allowance, `${used} tokens used across 3 gateways, over the limit's ${allowance.toFixed(0)}`);
    // Per-gateway buckets would have let about three times as much through.
    assert.ok(ok.length * (MAX_TOKENS + 1) <= allowance, `${ok.length} requests admitted`);
    await settled(cluster.leaderUrl, t.key);
    assertBilledOnce(ok, await usageOf(cluster.leaderUrl, t.key));
  });

  test('a budget holds across the gateways and every answer is billed exactly once', async () => {
    // About 9 requests' worst case (100 output tokens at $1000/Mtok = $0.10 each, plus the prompt).
    const t = await tenant('prepaid', { credit: '1.00' });
    const answers = await burst(t.key, 40, 'budget');
    const ok = answers.filter((r) => r.status === 200);
    const broke = answers.filter((r) => r.status === 429);
    assert.equal(ok.length + broke.length, answers.length, `only 200 and 429: ${answers.map((r) => r.status)}`);
    for (const r of broke) {
      assert.equal(r.json.error.code, 'insufficient_quota');
      assert.equal(r.headers.get('x-should-retry'), 'false');
    }
    assert.ok(ok.length >= 5 && broke.length > 0, `admitted ${ok.length}, refused ${broke.length}`);
    const balance = await settled(cluster.leaderUrl, t.key);
    assert.ok(Number(balance.charged) <= 1.0, `charged ${balance.charged} of a $1.00 credit`);
    assert.ok(Number(balance.available) >= 0, `available ${balance.available}`);
    const usage = await usageOf(cluster.leaderUrl, t.key);
    assertBilledOnce(ok, usage);
    const billed = usage.reduce((a, u) => a + u.amount_micros, 0);
    assert.equal(Math.round(Number(balance.charged) * 1e6), billed, 'the balance is charged what the usage bills');
  });

  test('a gateway SIGKILLed while holding slices: after their lease the holds are back, billed once', async () => {
    const t = await tenant('sliced', { credit: '5.00' });
    const base = cluster.leaderUrl;
    cluster.doomed = spawnLandlord(['gateway', '--store', PG, '--config', cluster.gatewayConfig]);
    const url = await cluster.doomed.url;
    const openSlices = async () => {
      const r = await call(base, 'GET', `/admin/slices?tenant_id=${t.id}`, ADMIN_KEY);
      assert.equal(r.status, 200, r.text);
      return r.json;
    };
    // Requests through it until it holds a slice of the tenant's balance (the control plane lists it).
    const answers = [];
    let held = [];
    for (let i = 0; i < 100 && held.length === 0; i++) {
      answers.push(...(await Promise.all([0, 1, 2, 3].map((j) => chat(url, t.key, `slice ${i} ${j}`)))));
      held = (await openSlices()).data.filter((s) => s.held.micros > 0);
    }
    assert.ok(held.length > 0, 'the gateway holds a slice');
    for (const r of answers) assert.equal(r.status, 200, r.text ?? r.error);
    cluster.doomed.proc.kill('SIGKILL');
    await cluster.doomed.exited;
    cluster.doomed = null;
    // Its slices stay held until their lease, as the control plane states it, runs out.
    const listed = await openSlices();
    assert.ok(listed.data.length > 0, 'the dead gateway still holds its slices');
    const expiresAt = Math.max(...listed.data.map((s) => s.expires_at_ms));
    assert.ok(expiresAt - Date.now() <= listed.ttl_ms, `expires within the lease (${listed.ttl_ms} ms)`);
    const before = await call(base, 'GET', '/v1/balance', t.key);
    assert.ok(Number(before.json.held) > 0, `held before the expiry: ${before.json.held}`);
    const balance = await waitFor(
      'the dead gateway\'s slices to expire',
      async () => {
        const b = await call(base, 'GET', '/v1/balance', t.key);
        return b.status === 200 && Number(b.json.held) === 0 && (await openSlices()).data.length === 0 ? b.json : null;
      },
      expiresAt - Date.now() + 5_000,
    );
    assert.ok(Date.now() >= expiresAt, 'not before the lease ran out');
    // Nothing billed twice, nothing lost: every answer once, the balance charged what the usage bills.
    const usage = await usageOf(base, t.key);
    assertBilledOnce(answers, usage);
    const billed = usage.reduce((a, u) => a + u.amount_micros, 0);
    assert.equal(Math.round(Number(balance.charged) * 1e6), billed, 'the balance is charged what the usage bills');
    assert.equal(Math.round(Number(balance.available) * 1e6), 5_000_000 - billed, 'the rest is available again');
    console.log(`# dead gateway: ${answers.length} answers billed once; its slices expired ${Date.now() - expiresAt} ms after their lease`);
  });

  test('SIGKILL of the leader: the standby leads within 10 s and nothing acknowledged is lost', async () => {
    const t = await tenant('failover');
    const base = cluster.leaderUrl;
    // Leases and their events, acknowledged by the leader.
    const leases = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(base, 'POST', '/v1/leases', t.key, { kind: 'spot', gpus: 8, max_price_per_gpu_hour: '10.00' });
      assert.equal(r.status, 201, r.text);
      leases.push(r.json.id);
    }
    const released = await call(base, 'DELETE', `/v1/leases/${leases[2]}`, t.key);
    assert.equal(released.status, 200, released.text);
    const seen = {};
    for (const id of leases) {
      seen[id] = await leaseEvents(base, t.key, id);
      assert.ok(seen[id].length > 0, `events of ${id}`);
    }
    assert.ok(seen[leases[2]].some((e) => e.type === 'released'), 'the release is an acknowledged event');

    // Load through every gateway across the failover.
    let loading = true;
    const answers = [];
    const loops = cluster.gatewayUrls.map(async (g, gi) => {
      for (let i = 0; loading; i++) {
        const r = await chat(g, t.key, `failover ${gi} ${i}`);
        answers.push({ ...r, at: Date.now() });
        if (r.status !== 200) await sleep(50);
      }
    });
    await sleep(1_000);
    const killedAt = Date.now();
    cluster.leader.proc.kill('SIGKILL');
    await cluster.leader.exited;
    const newUrl = await cluster.standby.url;
    const ledAt = Date.now();
    const took = (ledAt - killedAt) / 1000;
    assert.ok(took <= 10, `the standby led ${took.toFixed(1)} s after the SIGKILL`);
    cluster.leaderUrl = newUrl;
    const health = await call(newUrl, 'GET', '/healthz', ADMIN_KEY);
    assert.equal(health.status, 200, health.text);
    // The gateways follow it.
    await waitFor('answers through the gateways after the takeover', () =>
      answers.some((r) => r.status === 200 && r.at > ledAt + 500),
    );
    await sleep(1_000);
    loading = false;
    await Promise.all(loops);

    for (const r of answers) assert.ok([200, 503].includes(r.status), `status ${r.status}: ${r.text ?? r.error}`);
    const ok = answers.filter((r) => r.status === 200);
    assert.ok(ok.some((r) => r.at < killedAt), 'answers before the kill');
    // Every lease and every event the old leader acknowledged is there.
    for (const id of leases) {
      const l = await call(newUrl, 'GET', `/v1/leases/${id}`, t.key);
      assert.equal(l.status, 200, `lease ${id} after the takeover: ${l.text}`);
      const now = await leaseEvents(newUrl, t.key, id);
      for (const e of seen[id]) {
        assert.ok(now.some((n) => n.seq === e.seq && n.type === e.type), `event ${e.seq} (${e.type}) of ${id} survives`);
      }
    }
    const l2 = await call(newUrl, 'GET', `/v1/leases/${leases[2]}`, t.key);
    assert.ok(['released', 'ended'].includes(l2.json.state), `the released lease stays released: ${l2.json.state}`);
    // Requests held on the old leader and settled on the new one are billed once too.
    await settled(newUrl, t.key);
    assertBilledOnce(ok, await usageOf(newUrl, t.key));
    console.log(
      `# failover: standby led in ${took.toFixed(2)} s; ${ok.length} answers billed once, ` +
        `${answers.length - ok.length} 503 while no server led`,
    );
  });

  test('a leader that loses its database session stops, and a standby takes over', async () => {
    // The leader now is the old standby; a third server stands by behind it.
    const third = spawnLandlord(
      ['serve', '--config', cluster.serveConfig, '--store', PG, '--data-dir', path.join(cluster.dir, 'c')],
      { startTimeoutMs: 600_000 },
    );
    third.url.catch(() => {});
    cluster.third = third;
    await waitFor('the third server to stand by', () => third.output().stderr.includes('standby'), 15_000);
    // The database ends the leader's session (a network cut, an administrator): its lock goes.
    const cut = execFileSync(PSQL, [
      PG,
      '-Atc',
      "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7342003 AND granted",
    ]).toString().trim();
    assert.equal(cut, '1', 'one session held the leader lock');
    const cutAt = Date.now();
    const exit = await cluster.standby.exited;
    assert.deepEqual(exit, { code: 3, signal: null }, 'the deposed leader stops (status 3)');
    assert.match(cluster.standby.output().stderr, /lost the store's leadership/);
    const url = await third.url;
    assert.ok((Date.now() - cutAt) / 1000 <= 10, 'the third server leads within 10 s');
    cluster.leaderUrl = url;
    const t = await tenant('after-fencing');
    const r = await chat(cluster.gatewayUrls[0], t.key, 'after the fencing');
    assert.equal(r.status, 200, `the gateways follow the third leader: ${r.text ?? r.error}`);
  });
});
