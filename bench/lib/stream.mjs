// What the engine benchmarks share: `landlord serve` in front of engine servers, one streamed
// chat completion measured at the client, and quantiles.
import fs from 'node:fs/promises';
import path from 'node:path';

import { creditedTenant, request, smallFleetToml, spawnLandlord } from '../../tests/lib/landlord.mjs';

// One streamed chat completion (`include_usage`) to `url`: the client's time to first token
// (the request sent to the first chunk with text) and whole request (ms), the engine's
// `timings` and usage from the usage chunk, and the replica the gateway chose
// (`x-landlord-replica`; null when direct).
export async function streamOnce(url, key, body) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let text = '';
  let ttft = null;
  for await (const bytes of res.body) {
    text += decoder.decode(bytes, { stream: true });
    if (ttft === null && /"content":"[^"]/.test(text)) ttft = performance.now() - t0;
  }
  const total = performance.now() - t0;
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ') && !e.startsWith('data: [DONE]'));
  const last = JSON.parse(events.at(-1).slice(6));
  if (!last.usage) throw new Error(`no usage chunk: ${events.at(-1)}`);
  return {
    ttft,
    total,
    prompt_ms: last.timings?.prompt_ms ?? null,
    timings: last.timings ?? null,
    usage: last.usage,
    replica: res.headers.get('x-landlord-replica'),
  };
}

// The q-quantile of `xs` (nearest rank).
export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
export const median = (xs) => quantile(xs, 0.5);

// `landlord serve` (a small sim fleet, SQLite in `dir`) whose model API serves `model` from the
// static `upstreams` (URLs), with `gatewayToml` added to its [gateway] table, and a tenant with
// a key and $1000 of credit. Resolves to { serve, url, key }.
export async function startGateway({ bin, dir, adminKey, model, upstreams, gatewayToml = '' }) {
  const trace = path.join(dir, 'owner.csv');
  await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');
  const config = path.join(dir, 'landlord.toml');
  await fs.writeFile(
    config,
    `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${path.join(dir, 'data')}"\n${smallFleetToml(trace)}` +
      `[gateway]\nrpm = 0\ntpm = 0\n${gatewayToml}` +
      upstreams.map((u) => `[[gateway.upstreams]]\nmodel = "${model}"\nurl = "${u}"\n`).join(''),
  );
  const serve = spawnLandlord(bin, ['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: adminKey } });
  const url = await serve.url;
  const call = (method, route, key, body) => request(url, method, route, key, body);
  const { key } = await creditedTenant(call, adminKey, 'bench', { credit: '1000.00' });
  return { serve, url, key };
}
