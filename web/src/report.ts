// `landlord sim --html`: the same charts as the live dashboard, drawn from the run embedded in
// the page (window.__LANDLORD_REPORT__), with the policy comparison table. Nothing is fetched.
import { gpuChart, lineChart } from "./charts";
import { el, fmtNum, setRows, table } from "./dom";
import type { SimReport } from "./types";

// Metrics shown first, in this order (the rest follow alphabetically).
const FIRST = ["harvest_ratio", "harvested_gpu_h", "sold_while_owner_waited_gpu_h", "sold_gpu_h", "idle_gpu_h",
  "revenue_usd", "revenue_per_gpu_h", "internal_delayed_frac",
  "internal_wait_added_p99_s", "reserved_violations", "forecast_misses", "reclaims", "spot_price_mean_usd"];

export function renderReport(root: HTMLElement, r: SimReport): void {
  const panel = (id: string, title: string) => {
    const body = el("div", { class: "panel-body" });
    return { root: el("section", { class: "panel", id }, el("h2", {}, title), body), body };
  };
  const trace = el("p", { class: "trace" }, String(r.trace.description ?? r.trace.spec ?? ""),
    ` — ${String(r.trace.begin ?? "")} to ${String(r.trace.end ?? "")}`);
  const pTable = panel("view-policies", "Policies compared");
  const pGpus = panel("view-gpus", "GPUs by class (landlord policy)");
  const pRevenue = panel("view-revenue", "Revenue (landlord policy)");
  const pPrice = panel("view-price", "Spot price (landlord policy)");
  const pForecast = panel("view-forecast", "Owner demand against its forecast");
  root.replaceChildren(el("header", {}, el("h1", {}, r.title)), trace, pTable.root,
    el("div", { class: "grid" }, pGpus.root, pRevenue.root, pPrice.root, pForecast.root));

  const names = new Set<string>();
  for (const p of r.policies) for (const k of Object.keys(p.metrics)) names.add(k);
  const metrics = [...FIRST.filter((m) => names.has(m)), ...[...names].filter((m) => !FIRST.includes(m)).sort()];
  const t = table(["metric", ...r.policies.map((p) => p.name)]);
  setRows(t.body, metrics.map((m) => el("tr", { "data-metric": m }, el("td", {}, m),
    ...r.policies.map((p) => el("td", { class: "num" }, fmtNum(p.metrics[m] ?? null, 4))))), "no policies", 1);
  pTable.body.append(t.root);

  const s = r.series;
  if (s.t.length === 0) {
    for (const p of [pGpus, pRevenue, pPrice, pForecast]) p.body.append(el("p", { class: "empty" }, "the landlord policy was not run"));
    return;
  }
  gpuChart(pGpus.body, "GPUs by class over time").update(s);
  lineChart(pRevenue.body, "Revenue", [{ label: "revenue $", color: "#3aa776", pick: (x) => x.revenue_usd }], "$").update(s);
  lineChart(pPrice.body, "Spot price", [{ label: "$/GPU-h", color: "#e59a2f", pick: (x) => x.spot_price }], "$/GPU-h").update(s);
  lineChart(pForecast.body, "Owner demand", [
    { label: "actual", color: "#4a6fa5", pick: (x) => x.demand },
    { label: "forecast", color: "#d64545", pick: (x) => x.forecast, dash: [6, 4] },
  ], "GPUs").update(s);
}
