// The gateway's added latency in front of a real engine (issue 18): ONE llama.cpp `llama-server`
// (the random-weight model, one thread), reached two ways in the same run with the same prompts:
//
//   direct   client -> llama-server
//   gateway  client -> `landlord serve` (auth, rate limits, budget hold, routing, metering with
//            the usage committed to SQLite before the usage chunk) -> the same llama-server
//
// Each request is a streamed chat completion (`include_usage`) with a prompt of its own (so the
// engine's prompt cache never serves one path what the other computed) of about PROMPT_TOKENS
// tokens, and OUTPUT_TOKENS tokens out. The paths alternate request by request (which goes
// first alternates too), one request in flight at a time, so background load hits both alike.
//
// Measured at the client: time to first token (TTFT: the request sent to the first chunk with
// text) and the whole request; from the engine: its own prompt time (`timings.prompt_ms` of the
// usage chunk). Reported: medians and p90 per path, and the ADDED latency: the median of what
// the client waited beyond the engine's own prompt time (TTFT - prompt_ms), gateway minus
// direct, which takes out the engine's variance when other work shares the CPUs; as a
// fraction of the engine's TTFT as the direct client sees it (target < 1%). The raw TTFT
// differences (paired median, difference of p50s) are printed too.
//
// Usage: node bench/engine_bench.mjs [--bin LANDLORD] [--json FILE] [--requests N]
//   LLAMA_SERVER and LLAMA_MODEL: from scripts/llama.sh (`make bench` runs this through
//   tests/engine/run.sh, which sets them). PROMPT_TOKENS (512), OUTPUT_TOKENS (16), REQUESTS (60).
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
const BIN = path.resolve(opt('--bin', process.env.LANDLORD_BIN ?? path.join(HERE, '../build/release/landlord')));
const JSON_OUT = opt('--json', '');
const REQUESTS = Number(opt('--requests', process.env.REQUESTS ?? 60));
const PROMPT_TOKENS = Number(process.env.PROMPT_TOKENS ?? 512);
const OUTPUT_TOKENS = Number(process.env.OUTPUT_TOKENS ?? 16);
const MODEL = 'random-llama';
const ADMIN_KEY = 'engine-bench-admin-key-0123456789';

// A prompt of about `tokens` tokens (common English words are about a token each), unique by `i`
// from its first word.
function prompt(i, tokens) {
  const words = ['the', 'owner', 'sells', 'idle', 'GPU', 'hours', 'to', 'tenants', 'and', 'takes', 'them', 'back'];
  const out = [`Request ${i}:`];
  for (let k = 0; out.length < tokens; ++k) out.push(words[(k * 7 + i) % words.length]);
  return out.join(' ');
}

async function main() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-engine-bench-'));
  const engine = await startLlamaServer({
    bin: process.env.LLAMA_SERVER,
    model: process.env.LLAMA_MODEL,
    args: ['--alias', MODEL, '-c', String(2 * (PROMPT_TOKENS + OUTPUT_TOKENS) + 256)],
  });
  const { serve, url, key } = await startGateway({ bin: BIN, dir, adminKey: ADMIN_KEY, model: MODEL, upstreams: [engine.url] });

  const runs = { direct: [], gateway: [] };
  const paths = { direct: engine.url, gateway: url };
  const load = [os.loadavg()[0]];
  for (let i = -4; i < REQUESTS; ++i) {  // 4 warm-up pairs, not counted
    const body = {
      model: MODEL,
      messages: [{ role: 'user', content: prompt(i + 4, PROMPT_TOKENS) }],
      max_tokens: OUTPUT_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    };
    const order = i % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
    for (const p of order) {
      // The same prompt on both paths, but each path's copy its own from the first token (a
      // mark in front): the engine's prompt cache reuses only a common prefix, so neither path
      // gets the other's prefill for free.
      const b = { ...body, messages: [{ role: 'user', content: `(${p}) ${body.messages[0].content}` }] };
      const r = await streamOnce(paths[p], p === 'gateway' ? key : 'none', b);
      if (i >= 0) runs[p].push(r);
    }
  }
  load.push(os.loadavg()[0]);

  const sum = (p) => ({
    ttft_p50_ms: median(runs[p].map((r) => r.ttft)),
    ttft_p90_ms: quantile(runs[p].map((r) => r.ttft), 0.9),
    total_p50_ms: median(runs[p].map((r) => r.total)),
    engine_prompt_ms_p50: median(runs[p].map((r) => r.prompt_ms)),
    prompt_tokens: median(runs[p].map((r) => r.usage.prompt_tokens)),
    completion_tokens: median(runs[p].map((r) => r.usage.completion_tokens)),
  });
  const direct = sum('direct');
  const gateway = sum('gateway');
  // Paired differences: request i on both paths, same prompt, back to back.
  const diffs = runs.direct.map((d, i) => runs.gateway[i].ttft - d.ttft);
  // What the client waited beyond the engine's own prompt time: the engine's variance (other
  // work on the machine slows its prefill on either path) taken out.
  const beyond = (p) => runs[p].map((r) => r.ttft - r.prompt_ms);
  const result = {
    requests: REQUESTS,
    prompt_tokens: direct.prompt_tokens,
    output_tokens: OUTPUT_TOKENS,
    direct,
    gateway,
    added_ttft_ms_p50: gateway.ttft_p50_ms - direct.ttft_p50_ms,
    added_ttft_ms_paired_median: median(diffs),
    added_total_ms_p50: gateway.total_p50_ms - direct.total_p50_ms,
    beyond_engine_ms_p50: { direct: median(beyond('direct')), gateway: median(beyond('gateway')) },
    added_beyond_engine_ms: median(beyond('gateway')) - median(beyond('direct')),
    added_fraction_of_engine_ttft: (median(beyond('gateway')) - median(beyond('direct'))) / direct.ttft_p50_ms,
    loadavg_before_after: load,
    cpus: os.cpus().length,
  };
  const f = (x) => x.toFixed(2);
  console.log(`engine_bench: ${REQUESTS} streamed requests per path, ~${direct.prompt_tokens} prompt tokens, ${OUTPUT_TOKENS} out`);
  console.log('path      TTFT p50 ms  TTFT p90 ms  total p50 ms  engine prompt_ms p50');
  for (const [p, s] of [['direct', direct], ['gateway', gateway]]) {
    console.log(
      `${p.padEnd(9)} ${f(s.ttft_p50_ms).padStart(11)}  ${f(s.ttft_p90_ms).padStart(11)}  ${f(s.total_p50_ms).padStart(12)}  ${f(s.engine_prompt_ms_p50).padStart(20)}`,
    );
  }
  console.log(
    `TTFT beyond the engine's prompt_ms (p50): direct ${f(result.beyond_engine_ms_p50.direct)} ms, gateway ` +
      `${f(result.beyond_engine_ms_p50.gateway)} ms: the gateway adds ${f(result.added_beyond_engine_ms)} ms = ` +
      `${(100 * result.added_fraction_of_engine_ttft).toFixed(2)}% of the engine's TTFT (target < 1%)`,
  );
  console.log(
    `raw TTFT difference: paired median ${f(result.added_ttft_ms_paired_median)} ms, p50s ${f(result.added_ttft_ms_p50)} ms; ` +
      `whole request p50 +${f(result.added_total_ms_p50)} ms (the usage is committed before the usage chunk); ` +
      `load average ${load.map((x) => x.toFixed(2)).join(' -> ')} on ${os.cpus().length} CPUs`,
  );
  if (JSON_OUT) await fs.writeFile(JSON_OUT, `${JSON.stringify(result, null, 2)}\n`);
  await serve.stop();
  await engine.stop();
  await fs.rm(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
