// Small DOM helpers: elements built from text only (no innerHTML of server data), and tables
// whose bodies are replaced in one go.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

export function table(headers: string[]): { root: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = el("tbody");
  const root = el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), body);
  return { root, body };
}

export function setRows(body: HTMLTableSectionElement, rows: HTMLTableRowElement[], empty: string, span: number): void {
  if (rows.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: String(span), class: "empty" }, empty)));
    return;
  }
  body.replaceChildren(...rows);
}

export function fmtUsd(v: number | null | undefined, digits = 2): string {
  if (v == null || !Number.isFinite(v)) return "--";
  return `$${v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

export function fmtNum(v: number | null | undefined, digits = 0): string {
  if (v == null || !Number.isFinite(v)) return "--";
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

// "1h 02m 03s" for a duration in milliseconds (negative: 0s).
export function fmtDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m ${String(s).padStart(2, "0")}s`;
  if (m > 0) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

export function kpi(label: string): { root: HTMLElement; value: HTMLElement } {
  const value = el("div", { class: "kpi-value" }, "--");
  return { root: el("div", { class: "kpi" }, el("div", { class: "kpi-label" }, label), value), value };
}
