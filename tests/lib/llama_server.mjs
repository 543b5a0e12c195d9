// Starting a real llama.cpp `llama-server` from Node tests (tests/engine): the binary and the
// random-weight model come from scripts/llama.sh (LLAMA_SERVER and LLAMA_MODEL, which
// tests/engine/run.sh sets). The child is killed when the test process exits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import os from 'node:os';

import { creditedTenant, killOnExit, request, smallFleetToml, spawnLandlord } from './landlord.mjs';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const BIND_ATTEMPTS = 5;

// A loopback port that was free a moment ago. llama-server accepts `--port 0` but names the
// port it bound only once the model is loaded, after /health has answered 503 for a while; so
// the port is picked here, and a start that loses the race for it is retried (startLlamaServer).
export async function freeLoopbackPort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function spawnOnce(bin, model, port, extraArgs) {
  const args = ['-m', model, '-t', '1', '--host', '127.0.0.1', '--port', String(port), ...extraArgs];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(proc);
  let log = '';
  const keep = (d) => {
    log += d;
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  proc.stdout.setEncoding('utf8').on('data', keep);
  proc.stderr.setEncoding('utf8').on('data', keep);
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { proc, args, exited, log: () => log, url: `http://127.0.0.1:${port}` };
}

// Polls GET /health until 200; returns every status seen, in order, with its body (503 with
// "Loading model" while the model loads).
async function waitHealthy(server, timeoutMs) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  server.exited.then(() => {
    gone = true;
  });
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (seen.length === 0 || seen.at(-1).status !== res.status) seen.push({ status: res.status, body });
      if (res.status === 200) return seen;
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  return null;
}

// Starts `llama-server -m MODEL -t 1` on a free loopback port and waits until /health is 200.
// Resolves to { url, health (the statuses seen), log(), stop() }.
export async function startLlamaServer({ bin, model, args = [], readyTimeoutMs = READY_TIMEOUT_MS }) {
  let lastLog = '';
  for (let attempt = 0; attempt < BIND_ATTEMPTS; ++attempt) {
    const server = spawnOnce(bin, model, await freeLoopbackPort(), args);
    const health = await waitHealthy(server, readyTimeoutMs);
    if (health !== null) {
      return {
        ...server,
        health,
        async stop(signal = 'SIGTERM') {
          if (server.proc.exitCode !== null || server.proc.signalCode !== null) return server.exited;
          server.proc.kill(signal);
          const timer = setTimeout(() => server.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
          try {
            return await server.exited;
          } finally {
            clearTimeout(timer);
          }
        },
      };
    }
    server.proc.kill('SIGKILL');
    await server.exited;
    lastLog = server.log();
    if (!/couldn't bind/.test(lastLog)) break;  // not the port race: no point retrying
  }
  throw new Error(`llama-server did not become healthy:\n${lastLog.slice(-4000)}`);
}

// The events of a text/event-stream body: the `data:` payload of each, in order.
export function sseData(text) {
  return text
    .split(/\r?\n\r?\n/)
    .map((e) => e.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
    .filter((d) => d.length > 0);
}

// Polls `fn` until it returns a truthy value (what the system promises, never a guessed sleep
// standing in for it); fails with `what` after `ms`.
export async function until(what, fn, ms = 120_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) return assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// The pid of the engine replica `id`'s server that `landlord serve` started with its output in
// `logDir` (`[[gateway.engines]] log_dir`): the process whose stdout is `<logDir>/<id>.log`.
export async function replicaPid(logDir, id) {
  const want = path.join(logDir, `${id}.log`);
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await fs.readlink(`/proc/${entry}/fd/1`)) === want) return Number(entry);
    } catch {
      // gone, or not ours
    }
  }
  return null;
}

// The loopback URL the server with `pid` listens on (its `--port`).
export async function serverUrl(pid) {
  const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  return `http://127.0.0.1:${argv[argv.indexOf('--port') + 1]}`;
}

// `landlord serve` (`bin`) on the small sim fleet, the owner keeping one node, with `replicas`
// replicas of the random-weight model `model` started from `[[gateway.engines]]` (the
// LLAMA_SERVER and LLAMA_MODEL of tests/engine/run.sh, context `ctx`, their logs in s.logs),
// and a credited tenant `tenant`. `serverToml`: more [server] lines; `fleetToml`: the fleet's
// tables (smallFleetToml of the trace it is given) and whatever goes before the engines.
// Fills s.dir, s.logs, s.serve, s.url, s.call(method, route, key, body) and s.key.
export async function startServeWithEngines(s, { bin, adminKey, tenant, model, replicas = 2, gpusPerReplica, ctx,
  serverToml = '', fleetToml = (trace) => smallFleetToml(trace) }) {
  s.dir = await fs.mkdtemp(path.join(os.tmpdir(), `landlord-${tenant}-`));
  s.logs = path.join(s.dir, 'engines');
  await fs.mkdir(s.logs);
  const trace = path.join(s.dir, 'owner.csv');
  await fs.writeFile(trace, 'submit_s,gpus,duration_s\n0,8,3024000\n');  // the owner keeps one node
  const config = path.join(s.dir, 'landlord.toml');
  await fs.writeFile(
    config,
    `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${path.join(s.dir, 'data')}"\n${serverToml}${fleetToml(trace)}` +
      `[[gateway.engines]]\nmodel = "${model}"\nreplicas = ${replicas}\ngpus_per_replica = ${gpusPerReplica}\n` +
      `server = "${process.env.LLAMA_SERVER}"\nmodel_path = "${process.env.LLAMA_MODEL}"\n` +
      `args = ["-c", "${ctx}"]\nthreads = 1\nlog_dir = "${s.logs}"\n`,
  );
  s.serve = spawnLandlord(bin, ['serve', '--config', config], { env: { LANDLORD_ADMIN_KEY: adminKey } });
  s.url = await s.serve.url;
  s.call = (method, route, k, body) => request(s.url, method, route, k, body, 60_000);
  s.key = (await creditedTenant(s.call, adminKey, tenant)).key;
}
