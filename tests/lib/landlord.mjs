// Starting and stopping `landlord` processes from Node tests (tests/node, tests/web): each
// child is killed when the test process exits, even if no hook runs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

// Every child these helpers start, so that none outlives the test process even if a hook never
// runs.
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

// Kills `proc` (a ChildProcess) when the test process exits, unless it has exited by then.
export function killOnExit(proc) {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

// Spawns `landlord ARGS...` and resolves once its first stdout line names the URL it listens on
// (a standby `serve` prints it only when it takes over: give it a longer `startTimeoutMs`).
export function spawnLandlord(bin, args, { env = {}, cwd = undefined, startTimeoutMs = START_TIMEOUT_MS } = {}) {
  const proc = spawn(bin, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(proc);
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  proc.stdout.setEncoding('utf8');
  const describeProc = () => `\`landlord ${args.join(' ')}\`\nstdout:\n${stdout}\nstderr:\n${stderr}`;
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no listening line within ${startTimeoutMs} ms from ${describeProc()}`));
    }, startTimeoutMs);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.stdout.on('data', (d) => {
      // Keep draining stdout after the first line so that the pipe never fills.
      const first = stdout.length === 0 || !stdout.includes('\n');
      stdout += d;
      if (first && stdout.includes('\n')) {
        clearTimeout(timer);
        const line = stdout.slice(0, stdout.indexOf('\n'));
        const m = /^landlord [a-z-]+: listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) resolve(m[1]);
        else reject(new Error(`unexpected first stdout line ${JSON.stringify(line)} from ${describeProc()}`));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`exited (code ${code}, signal ${signal}) before listening: ${describeProc()}`));
    });
  });
  return {
    proc,
    url,
    exited,
    describe: describeProc,
    // What it printed so far.
    output: () => ({ stdout, stderr }),
    // SIGTERM, then SIGKILL if it does not go; resolves to how it exited.
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}


// The small sim fleet the end-to-end tests serve from: 4 nodes of 8 GPUs replaying the owner's
// trace `trace` (a csv file) at `speed` (20x), sold spot-all with a 20 s notice; `policyExtra`:
// more [policy] lines. The [clock], [fleet] and [policy] tables of a serve config.
export function smallFleetToml(trace, policyExtra = '', speed = 20) {
  return `[clock]
speed = ${speed}
[fleet]
trace = "csv:${trace}"
nodes = 4
gpus_per_node = 8
history_h = 360
[policy]
name = "spot-all"
notice_s = 20
${policyExtra}`;
}

// One API call: `method route` on `base` with the bearer `key` and a JSON `body` (none when
// undefined). Resolves to the status, the headers, the parsed JSON body (undefined when empty
// or not JSON) and the raw text.
export async function request(base, method, route, key, body, timeoutMs = 20_000) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

// A tenant with a key and a prepaid credit, made through `call(method, route, key, body)` with
// the admin key; asserts each answer. Resolves to { id, key }.
export async function creditedTenant(call, adminKey, name, { credit = '5.00', rpm = 0, tpm = 0 } = {}) {
  const t = await call('POST', '/admin/tenants', adminKey, { name });
  assert.equal(t.status, 201, t.text);
  const k = await call('POST', '/admin/keys', adminKey, { tenant_id: t.json.id, rpm, tpm });
  assert.equal(k.status, 201, k.text);
  const c = await call('POST', '/admin/credits', adminKey, { tenant_id: t.json.id, amount: credit });
  assert.equal(c.status, 200, c.text);
  return { id: t.json.id, key: k.json.key };
}

// `call(method, route, key, body)` against the server at `baseUrl()` (read at each call).
export function apiClient(baseUrl, timeoutMs = 20_000) {
  return (method, route, key, body) => request(baseUrl(), method, route, key, body ?? undefined, timeoutMs);
}
