// Starting and stopping `landlord` processes from Node tests (tests/node, tests/web): each
// child is killed when the test process exits, even if no hook runs.
import { spawn } from 'node:child_process';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

// Every child this file starts, so that none outlives it even if a hook never runs.
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

// Spawns `landlord ARGS...` and resolves once its first stdout line names the URL it listens on.
export function spawnLandlord(bin, args, { env = {}, cwd = undefined } = {}) {
  const proc = spawn(bin, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  proc.stdout.setEncoding('utf8');
  const describeProc = () => `\`landlord ${args.join(' ')}\`\nstdout:\n${stdout}\nstderr:\n${stderr}`;
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no listening line within ${START_TIMEOUT_MS} ms from ${describeProc()}`));
    }, START_TIMEOUT_MS);
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


// `call(method, route, key, body)` against the server at `baseUrl()` (read at each call): the
// status, the parsed JSON body (undefined when empty) and the raw text.
export function apiClient(baseUrl, timeoutMs = 20_000) {
  return async (method, route, key, body) => {
    const res = await fetch(`${baseUrl()}${route}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, text };
  };
}
