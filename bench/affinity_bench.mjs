// Prefix-affinity routing against least-loaded routing, measured on real engines (issue 18):
// the Mooncake conversation trace (data/mooncake_fast25, FAST '25) rendered as prompts with the
// trace's shared prefixes, replayed through `landlord serve` to TWO llama.cpp `llama-server`
// replicas (the random-weight model, `-t 1` each), once per routing policy in the same run.
//
// Rendering. A Mooncake request is the ids of its prompt's 512-token KV blocks (`hash_ids`):
// two requests share a prefix exactly as far as their leading ids agree (every prompt starts
// with block 0, a shared system prompt; a conversation's next turn repeats the earlier turns'
// blocks). Block id b becomes BLOCK_WORDS words of four letters drawn by a generator seeded
// with b, so equal ids are equal text and equal tokens, and a block is always the same number of
// bytes (5 per word): the gateway's `prefix_bytes` is set to two blocks, as it hashes about two
// 512-token blocks of a real prompt. Prompts are cut at MAX_BLOCKS blocks (a cut keeps every
// shared prefix shared). Scaled down from 512 tokens a block to about BLOCK_WORDS, so that a
// few hundred requests fit this machine.
//
// Sampling. A contiguous stretch of a few hundred requests holds few continuations (turns of one
// conversation are minutes apart). So whole conversations are sampled: requests are grouped by
// their first two blocks (the system prompt and the conversation's first turn), the groups are
// shuffled with a seeded generator and taken until REQUESTS requests, which are replayed in
// trace order. The sample's reusable share (prompt blocks an unbounded single cache would hold)
// is printed; the whole trace's is 0.37.
//
// Replay, per policy (the gateway's `[gateway] affinity = true | false`): two fresh servers
// (`-np 2` slots each, a `--cache-ram` prompt cache of CACHE_MB), a fresh `landlord serve` with
// both as static upstreams, CONCURRENCY streamed chat completions in flight (closed loop),
// OUTPUT_TOKENS out each. Counted per request from the engine's own `timings` (the usage chunk):
// `prompt_n`, prompt tokens it computed, and `cache_n`, tokens it reused from its cache; the
// servers' `/metrics` (`llamacpp:prompt_tokens_total`) are read at the end as a check. TTFT is
// measured at the client. ROUNDS=2 runs the policies twice, in the order L A A L, so that a
// drift of the machine's background load falls on both.
//
// Usage: node bench/affinity_bench.mjs [--bin LANDLORD] [--json FILE]
//   LLAMA_SERVER and LLAMA_MODEL: from scripts/llama.sh (`make bench` runs this through
//   tests/engine/run.sh, which sets them). REQUESTS (300), CONCURRENCY (4), OUTPUT_TOKENS (4),
//   BLOCK_WORDS (16), MAX_BLOCKS (48), CACHE_MB (256), SEED (1), ROUNDS (1).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startLlamaServer } from '../tests/lib/llama_server.mjs';
import { median, quantile, startGateway, streamOnce } from './lib/stream.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const env = (name, dflt) => Number(process.env[name] ?? dflt);
const BIN = path.resolve(opt('--bin', process.env.LANDLORD_BIN ?? path.join(HERE, '../build/release/landlord')));
const JSON_OUT = opt('--json', '');
const TRACE = path.join(HERE, '../data/mooncake_fast25/conversation_trace.jsonl');
const REQUESTS = env('REQUESTS', 300);
const CONCURRENCY = env('CONCURRENCY', 4);
const OUTPUT_TOKENS = env('OUTPUT_TOKENS', 4);
const BLOCK_WORDS = env('BLOCK_WORDS', 16);
const MAX_BLOCKS = env('MAX_BLOCKS', 48);
const CACHE_MB = env('CACHE_MB', 256);
const SEED = env('SEED', 1);
const ROUNDS = env('ROUNDS', 1);
const REPLICAS = 2;
const MODEL = 'random-llama';
const ADMIN_KEY = 'affinity-bench-admin-key-0123456789';

// SplitMix64's output for `x` (BigInt in, BigInt out): a seeded generator's steps.
function splitmix(x) {
  let z = (x + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}

// Four-letter words (5 bytes with the space after each): a block's bytes are fixed.
const WORDS = (
  'time year work life hand part case week fact home room area book word side kind head ' +
  'face view line city name team idea body back door form road rate rule test town plan ' +
  'file node disk port host user code data list page menu tool type unit cost load rack'
).split(' ');

// Block `id` as text: BLOCK_WORDS words drawn from a generator seeded with the id.
function renderBlock(id) {
  const out = [];
  let s = BigInt(id) * 1000003n;
  for (let k = 0; k < BLOCK_WORDS; ++k) {
    s = splitmix(s);
    out.push(WORDS[Number(s % BigInt(WORDS.length))]);
  }
  return `${out.join(' ')} `;
}

// The sample: whole conversations (by their first two blocks), seeded, in trace order.
async function sample() {
  const rows = (await fs.readFile(TRACE, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  const groups = new Map();
  rows.forEach((r, i) => {
    const k = r.hash_ids.slice(0, 2).join(',');
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(i);
  });
  const keys = [...groups.keys()];
  let s = BigInt(SEED);
  for (let i = keys.length - 1; i > 0; --i) {  // Fisher-Yates
    s = splitmix(s);
    const j = Number(s % BigInt(i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  const picked = [];
  for (const k of keys) {
    if (picked.length >= REQUESTS) break;
    picked.push(...groups.get(k));
  }
  picked.sort((a, b) => a - b);
  return picked.slice(0, REQUESTS).map((i) => rows[i].hash_ids.slice(0, MAX_BLOCKS));
}

// The share of the sample's blocks that an unbounded single prefix cache would hold.
function reusableShare(requests) {
  const seen = new Set();
  let total = 0;
  let reused = 0;
  for (const blocks of requests) {
    total += blocks.length;
    let k = 0;
    while (k < blocks.length && seen.has(blocks.slice(0, k + 1).join(','))) ++k;
    reused += k;
    for (let i = 1; i <= blocks.length; ++i) seen.add(blocks.slice(0, i).join(','));
  }
  return reused / total;
}

// `llamacpp:prompt_tokens_total` of the server at `url`.
async function promptTokensTotal(url) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const m = /^llamacpp:prompt_tokens_total (\S+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

// One policy's replay on fresh servers and a fresh gateway.
async function replay(policy, prompts) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-affinity-bench-'));
  const servers = [];
  for (let i = 0; i < REPLICAS; ++i) {
    servers.push(
      await startLlamaServer({
        bin: process.env.LLAMA_SERVER,
        model: process.env.LLAMA_MODEL,
        args: ['--alias', MODEL, '-c', '8192', '-np', '2', '--metrics', '--cache-ram', String(CACHE_MB)],
      }),
    );
  }
  const { serve, url, key } = await startGateway({
    bin: BIN,
    dir,
    adminKey: ADMIN_KEY,
    model: MODEL,
    upstreams: servers.map((s) => s.url),
    gatewayToml: `affinity = ${policy === 'affinity'}\nprefix_bytes = ${2 * 5 * BLOCK_WORDS}\n`,
  });
  const results = new Array(prompts.length);
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < prompts.length) {
      const i = next++;
      results[i] = await streamOnce(url, key, {
        model: MODEL,
        messages: [{ role: 'user', content: prompts[i] }],
        max_tokens: OUTPUT_TOKENS,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wall_s = (performance.now() - t0) / 1000;
  const metricsTotal = (await Promise.all(servers.map((s) => promptTokensTotal(s.url)))).reduce((a, b) => a + b, 0);
  await serve.stop();
  for (const s of servers) await s.stop();
  await fs.rm(dir, { recursive: true, force: true });

  const sum = (f) => results.reduce((a, r) => a + f(r), 0);
  const byReplica = {};
  for (const r of results) byReplica[r.replica] = (byReplica[r.replica] ?? 0) + 1;
  const ttfts = results.map((r) => r.ttft);
  return {
    policy,
    requests: results.length,
    prompt_tokens: sum((r) => r.usage.prompt_tokens),
    computed_tokens: sum((r) => r.timings.prompt_n),
    cached_tokens: sum((r) => r.timings.cache_n),
    computed_tokens_engine_metrics: metricsTotal,
    output_tokens: sum((r) => r.usage.completion_tokens),
    ttft_p50_ms: median(ttfts),
    ttft_p99_ms: quantile(ttfts, 0.99),
    total_p50_ms: median(results.map((r) => r.total)),
    wall_s,
    requests_per_s: results.length / wall_s,
    prompt_tokens_per_s: sum((r) => r.usage.prompt_tokens) / wall_s,
    output_tokens_per_s: sum((r) => r.usage.completion_tokens) / wall_s,
    requests_by_replica: byReplica,
  };
}

async function main() {
  const requests = await sample();
  const prompts = requests.map((blocks) => blocks.map(renderBlock).join(''));
  const reusable = reusableShare(requests);
  console.log(
    `affinity_bench: ${prompts.length} Mooncake requests (whole conversations, seed ${SEED}; ` +
      `${BLOCK_WORDS} words a block, at most ${MAX_BLOCKS} blocks; reusable share ${reusable.toFixed(3)}), ` +
      `${REPLICAS} llama-server replicas, ${CONCURRENCY} in flight, ${OUTPUT_TOKENS} tokens out`,
  );
  const order = ['least_loaded', 'affinity'];
  const plan = ROUNDS >= 2 ? [...order, ...[...order].reverse()] : order;
  const load = [os.loadavg()[0]];
  const runs = [];
  for (const policy of plan) {
    const r = await replay(policy, prompts);
    runs.push(r);
    console.log(
      `${policy.padEnd(12)} computed ${r.computed_tokens} of ${r.prompt_tokens} prompt tokens ` +
        `(cached ${r.cached_tokens}; engines' /metrics: ${r.computed_tokens_engine_metrics}), ` +
        `TTFT p50 ${r.ttft_p50_ms.toFixed(1)} ms p99 ${r.ttft_p99_ms.toFixed(1)} ms, ` +
        `${r.prompt_tokens_per_s.toFixed(0)} prompt tok/s, ${r.output_tokens_per_s.toFixed(1)} output tok/s, ` +
        `${r.wall_s.toFixed(1)} s, by replica ${JSON.stringify(r.requests_by_replica)}`,
    );
    load.push(os.loadavg()[0]);
  }
  const result = {
    requests: prompts.length,
    seed: SEED,
    block_words: BLOCK_WORDS,
    max_blocks: MAX_BLOCKS,
    concurrency: CONCURRENCY,
    output_tokens: OUTPUT_TOKENS,
    cache_mb: CACHE_MB,
    reusable_share: reusable,
    runs,
    loadavg: load,
    cpus: os.cpus().length,
  };
  console.log(`load average ${load.map((x) => x.toFixed(2)).join(' -> ')} on ${os.cpus().length} CPUs`);
  if (JSON_OUT) await fs.writeFile(JSON_OUT, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
