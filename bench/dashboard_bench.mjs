// The dashboard's page load on loopback, in Debian's Chromium (playwright-core), against a real
// `landlord serve`, side by side with a baseline measured in the same run:
//
//   login page   navigation to the login form: index.html, the bundle and the styles, no data
//                (the floor of any page this server serves with this bundle)
//   dashboard    navigation to every view drawn with data, the admin key already in the session
//                (index.html, the bundle, GET /admin/dashboard and /admin/fleet/map, all charts
//                and the fleet map): the figure of the "loads in under 1 s"
//
// on the default fleet (`landlord serve` on its embedded Helios trace, 856 GPUs) and on a
// 100,000-GPU fleet (12,500 nodes of 8). Median and max of ROUNDS loads each, a fresh browser
// context per load (nothing cached). Also the bundle's size, raw and gzipped.
//
//   node bench/dashboard_bench.mjs [--bin build/bench/landlord] [--json FILE]
// Env: BENCH_ROUNDS (15), CHROMIUM (/usr/bin/chromium).
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { spawnLandlord } from '../tests/lib/landlord.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const require = createRequire(path.join(ROOT, 'web/package.json'));
const { chromium } = require('playwright-core');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const BIN = path.resolve(opt('--bin', process.env.LANDLORD_BIN ?? path.join(ROOT, 'build/bench/landlord')));
const JSON_OUT = opt('--json', '');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const KEY = `ll_bench_admin_${Math.random().toString(16).slice(2)}${Math.random().toString(16).slice(2)}`;

async function serve(extraConfig) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-dash-bench-'));
  const config = path.join(dir, 'serve.toml');
  await fs.writeFile(config, `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${path.join(dir, 'data')}"\n${extraConfig}`);
  const proc = spawnLandlord(BIN, ['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: KEY }, cwd: ROOT });
  const url = await proc.url;
  return { url, async stop() { await proc.stop(); await fs.rm(dir, { recursive: true, force: true }); } };
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], max: s[s.length - 1], runs: s.length };
}

async function load(browser, url, withKey) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  if (withKey) {
    await context.addInitScript((k) => sessionStorage.setItem('landlord.admin_key', k), KEY);
  }
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'commit' });
  if (withKey) {
    await page.waitForSelector('#view-fleet canvas[data-gpus]', { timeout: 30_000 });
    await page.waitForSelector('#view-forecast .uplot canvas');
  } else {
    await page.waitForSelector('#login-form');
  }
  const ms = Date.now() - t0;
  const inPage = withKey ? await page.evaluate(() => window.__landlord) : null;
  await context.close();
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  return { ms, inPage };
}

async function measure(browser, name, url) {
  // One warm-up load of each (the server's first answers, the browser's first process).
  await load(browser, url, false);
  await load(browser, url, true);
  const login = [], dash = [], draw = [];
  for (let i = 0; i < ROUNDS; ++i) {
    login.push((await load(browser, url, false)).ms);
    const d = await load(browser, url, true);
    dash.push(d.ms);
    draw.push(d.inPage.mapDrawMs);
  }
  const r = { fleet: name, login_page_ms: stats(login), dashboard_ms: stats(dash), map_draw_ms: stats(draw) };
  r.ratio_median = r.dashboard_ms.median / r.login_page_ms.median;
  return r;
}

const js = await fs.readFile(path.join(path.dirname(BIN), 'src/web/dist/app.js')).catch(() => null);
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
const results = [];
try {
  const def = await serve('');
  try {
    results.push(await measure(browser, 'default (Helios, 856 GPUs)', def.url));
  } finally {
    await def.stop();
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-dash-trace-'));
  const trace = path.join(dir, 'owner.csv');
  await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,60000,3024000\n');
  const big = await serve(`[clock]\nspeed = 10\n[fleet]\ntrace = "csv:${trace}"\nnodes = 12500\ngpus_per_node = 8\nhistory_h = 24\n[gateway]\nsim_models = []\n`);
  try {
    results.push(await measure(browser, '100,000 GPUs (12,500 nodes)', big.url));
  } finally {
    await big.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
} finally {
  await browser.close();
}

const out = {
  machine: `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}`,
  chromium: CHROMIUM,
  rounds: ROUNDS,
  bundle: js ? { app_js_bytes: js.length, app_js_gzip_bytes: gzipSync(js).length } : null,
  results,
};
console.log(`dashboard_bench: ${out.machine}, ${ROUNDS} loads each, a fresh browser context per load`);
if (out.bundle) console.log(`  bundle app.js ${out.bundle.app_js_bytes} bytes (${out.bundle.app_js_gzip_bytes} gzipped)`);
console.log('  fleet                          login page   dashboard (median / max)   ratio   map draw');
for (const r of results) {
  console.log(`  ${r.fleet.padEnd(30)} ${String(r.login_page_ms.median).padStart(6)} ms   ` +
    `${String(r.dashboard_ms.median).padStart(6)} / ${String(r.dashboard_ms.max).padStart(5)} ms         ` +
    `${r.ratio_median.toFixed(2)}   ${r.map_draw_ms.median.toFixed(1)} ms`);
}
if (JSON_OUT) await fs.writeFile(JSON_OUT, JSON.stringify(out, null, 2) + '\n');
