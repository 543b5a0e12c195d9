// The dashboard's side of the owner API: authorised GETs, and the live feed (`GET /admin/stream`,
// server-sent events) read over fetch so that the admin key travels in the Authorization
// header, never in a URL. EventSource cannot set headers.

export class AuthError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

// The message of an OpenAI-style error body, or the status line.
async function errorText(res: Response): Promise<string> {
  try {
    const body = await res.json();
    if (body && body.error && typeof body.error.message === "string") return body.error.message;
  } catch {
    // not JSON
  }
  return `HTTP ${res.status}`;
}

function authError(status: number, detail: string): AuthError {
  if (status === 403) {
    return new AuthError(status, "That is a tenant's key: the dashboard needs the owner's admin key.");
  }
  return new AuthError(status, `The admin key was not accepted (${detail}).`);
}

export async function getJson<T>(key: string, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot reach the server: ${(e as Error).message}`);
  }
  if (res.status === 401 || res.status === 403) throw authError(res.status, await errorText(res));
  if (!res.ok) throw new Error(`${path}: ${await errorText(res)}`);
  return (await res.json()) as T;
}

export interface StreamHandlers {
  onEvent(type: string, data: string): void;
  onState(state: "live" | "reconnecting"): void;
  onAuthError(e: AuthError): void;
}

// Reads the event stream until stop() is called, reconnecting with backoff (1 s doubling to
// 10 s) when the connection drops; an authorisation error ends it.
export function openStream(key: string, path: string, h: StreamHandlers): { stop(): void } {
  let stopped = false;
  let controller: AbortController | null = null;
  let backoff = 1000;

  const run = async (): Promise<void> => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const res = await fetch(path, {
          headers: { Authorization: `Bearer ${key}`, Accept: "text/event-stream" },
          signal: controller.signal,
          cache: "no-store",
        });
        if (res.status === 401 || res.status === 403) {
          h.onAuthError(authError(res.status, await errorText(res)));
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        h.onState("live");
        backoff = 1000;
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let type = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) type = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length > 0) h.onEvent(type, data.join("\n"));
          }
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      h.onState("reconnecting");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(10_000, backoff * 2);
    }
  };
  void run();
  return {
    stop() {
      stopped = true;
      controller?.abort();
    },
  };
}
