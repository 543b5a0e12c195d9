// The live dashboard of `landlord serve`: KPIs, charts, the fleet map and the tables, fed by
// one GET each at login and then by the live feed (`GET /admin/stream`): `dashboard` snapshots
// about once a second, `fleet` maps when the fleet changed, and `lease` events as they happen.
import { AuthError, getJson, openStream } from "./api";
import { gpuChart, lineChart, type Chart } from "./charts";
import { el, fmtDuration, fmtNum, fmtUsd, kpi, setRows, table } from "./dom";
import { FleetMapView } from "./fleetmap";
import type { Dashboard, FleetMap, Lease } from "./types";

export interface DashboardHandle {
  stop(): void;
}

// Counts of what was rendered, for the end-to-end test (window.__landlord).
export interface RenderStats {
  snapshots: number;
  maps: number;
  leaseEvents: number;
  firstRenderMs: number | null;
  mapDrawMs: number | null; // the last fleet map draw
  points: number; // samples in the charts now
}

export async function startDashboard(
  root: HTMLElement,
  key: string,
  onAuthLost: (message: string) => void,
): Promise<DashboardHandle> {
  const t0 = performance.now();
  // Both must succeed before anything is shown: a wrong key shows no data at all.
  const [first, map] = await Promise.all([
    getJson<Dashboard>(key, "/admin/dashboard"),
    getJson<FleetMap>(key, "/admin/fleet/map"),
  ]);

  const stats: RenderStats = { snapshots: 0, maps: 0, leaseEvents: 0, firstRenderMs: null, mapDrawMs: null, points: 0 };
  (window as unknown as { __landlord: unknown }).__landlord = stats;

  const status = el("span", { class: "live", id: "live" }, "connecting");
  const clock = el("span", { class: "clock", id: "clock" });
  const logout = el("button", { type: "button", id: "logout" }, "Log out");
  const header = el("header", {}, el("h1", {}, "Landlord"), clock, status, logout);

  const kCapacity = kpi("GPUs"),
    kInternal = kpi("owner"),
    kSold = kpi("sold (reserved / spot / inference)"),
    kIdle = kpi("idle"),
    kPrice = kpi("spot $/GPU-h"),
    kRevenue = kpi("revenue since start"),
    kPerGpu = kpi("revenue per GPU-hour"),
    kCost = kpi("cost per million tokens");
  const kpis = el("section", { class: "kpis", id: "kpis" },
    ...[kCapacity, kInternal, kSold, kIdle, kPrice, kRevenue, kPerGpu, kCost].map((k) => k.root));

  const panel = (id: string, title: string) => {
    const body = el("div", { class: "panel-body" });
    return { root: el("section", { class: "panel", id }, el("h2", {}, title), body), body };
  };
  const pGpus = panel("view-gpus", "GPUs by class");
  const pRevenue = panel("view-revenue", "Revenue");
  const pPrice = panel("view-price", "Spot price");
  const pForecast = panel("view-forecast", "Owner demand against its forecast");
  const pMap = panel("view-fleet", "Fleet map");
  const pLeases = panel("view-leases", "Leases");
  const pReclaims = panel("view-reclaims", "Recent reclaims");
  const pTenants = panel("view-tenants", "Tenants");
  const legend = el("div", { class: "legend" },
    ...["internal", "reserved", "spot", "inference", "noticed", "idle"].map((c) =>
      el("span", { class: `sw sw-${c}` }, c)));
  pMap.body.append(legend);

  root.replaceChildren(header, kpis,
    el("div", { class: "grid" }, pGpus.root, pRevenue.root, pPrice.root, pForecast.root),
    pMap.root, el("div", { class: "grid" }, pLeases.root, pReclaims.root), pTenants.root);

  const charts: Chart[] = [
    gpuChart(pGpus.body, "GPUs by class over time"),
    lineChart(pRevenue.body, "Revenue", [
      { label: "revenue $", color: "#3aa776", pick: (s) => s.revenue_usd },
      { label: "$ per GPU-hour", color: "#8e5cc4", pick: (s) => s.revenue_per_gpu_h ?? [], scale: "y2" },
    ], "$", "$/GPU-h"),
    lineChart(pPrice.body, "Spot price", [{ label: "$/GPU-h", color: "#e59a2f", pick: (s) => s.spot_price }], "$/GPU-h"),
    lineChart(pForecast.body, "Owner demand", [
      { label: "actual", color: "#4a6fa5", pick: (s) => s.demand },
      { label: "forecast", color: "#d64545", pick: (s) => s.forecast, dash: [6, 4] },
    ], "GPUs"),
  ];
  const mapView = new FleetMapView(pMap.body);

  const leases = table(["lease", "tenant", "kind", "state", "GPUs", "$/GPU-h", "reclaim"]);
  pLeases.body.append(leases.root);
  const reclaims = table(["lease", "tenant", "GPUs", "noticed", "reclaim at", "state"]);
  pReclaims.body.append(reclaims.root);
  const tenants = table(["tenant", "name", "live leases", "GPUs", "billed this month", "tokens", "balance"]);
  pTenants.body.append(tenants.root);

  // Server time: the snapshot's `now` plus the wall time since, at the clock's speed.
  let serverNowS = first.now_s;
  let serverAt = performance.now();
  let speed = first.clock_speed;
  const serverNowMs = () => (serverNowS + ((performance.now() - serverAt) / 1000) * speed) * 1000;
  let current = first;
  const liveLeases = new Map<string, Lease>();

  const renderLeases = () => {
    const rows = current.leases.map((l) => {
      const live = liveLeases.get(l.id) ?? l;
      const countdown = el("td", { class: "countdown" });
      if (live.reclaim_at && !live.ended_at) {
        countdown.dataset.reclaimAt = String(Date.parse(live.reclaim_at));
        countdown.textContent = "…";
      } else {
        countdown.textContent = live.ended_at ? (live.end_reason ?? "ended") : "";
      }
      return el("tr", { "data-lease": live.id, class: `state-${live.state}` },
        el("td", {}, live.id), el("td", {}, live.tenant_id ?? ""), el("td", {}, live.kind), el("td", {}, live.state),
        el("td", { class: "num" }, String(live.gpus)), el("td", { class: "num" }, live.price_per_gpu_hour), countdown);
    });
    setRows(leases.body, rows, "no leases yet", 7);
    tickCountdowns();
  };
  const tickCountdowns = () => {
    const now = serverNowMs();
    for (const td of leases.body.querySelectorAll<HTMLElement>("td.countdown[data-reclaim-at]")) {
      const left = Number(td.dataset.reclaimAt) - now;
      td.textContent = left > 0 ? `reclaim in ${fmtDuration(left)}` : "reclaiming";
    }
    clock.textContent = `${new Date(now).toISOString().replace("T", " ").slice(0, 19)} UTC` +
      (speed !== 1 ? ` (${speed}x)` : "");
  };

  const render = (d: Dashboard) => {
    current = d;
    serverNowS = d.now_s;
    serverAt = performance.now();
    speed = d.clock_speed;
    liveLeases.clear();
    const g = d.gpus;
    kCapacity.value.textContent = fmtNum(g.capacity);
    kInternal.value.textContent = fmtNum(g.internal);
    kSold.value.textContent = `${fmtNum(g.reserved)} / ${fmtNum(g.spot)} / ${fmtNum(g.inference)}`;
    kIdle.value.textContent = fmtNum(g.idle);
    kPrice.value.textContent = `$${d.spot_price}`;
    kRevenue.value.textContent = fmtUsd(d.report.since_start.revenue_usd);
    kPerGpu.value.textContent = fmtUsd(d.report.since_start.revenue_per_gpu_h, 4);
    kCost.value.textContent = fmtUsd(d.report.since_start.cost_per_mtok_usd, 4);
    for (const c of charts) c.update(d.series);
    stats.points = d.series.t.length;
    renderLeases();
    setRows(reclaims.body, d.reclaims.map((r) =>
      el("tr", { "data-lease": r.lease },
        el("td", {}, r.lease), el("td", {}, r.tenant_id), el("td", { class: "num" }, String(r.gpus)),
        el("td", {}, r.noticed_at), el("td", {}, r.reclaim_at ?? ""), el("td", {}, r.state))),
      "no reclaims yet", 6);
    setRows(tenants.body, d.tenants.map((t) =>
      el("tr", { "data-tenant": t.id },
        el("td", {}, t.id), el("td", {}, t.name), el("td", { class: "num" }, String(t.live_leases)),
        el("td", { class: "num" }, String(t.gpus)), el("td", { class: "num" }, `$${t.billed}`),
        el("td", { class: "num" }, fmtNum(t.tokens)), el("td", { class: "num" }, `$${t.balance}`))),
      "no tenants yet", 7);
    stats.snapshots++;
  };

  render(first);
  mapView.update(map);
  stats.maps++;
  stats.mapDrawMs = mapView.drawMs;
  stats.firstRenderMs = performance.now() - t0;
  const ticker = window.setInterval(tickCountdowns, 250);

  const stream = openStream(key, "/admin/stream", {
    onEvent(type, data) {
      if (type === "dashboard") {
        render(JSON.parse(data) as Dashboard);
      } else if (type === "fleet") {
        mapView.update(JSON.parse(data) as FleetMap);
        stats.maps++;
        stats.mapDrawMs = mapView.drawMs;
      } else if (type !== "message") {
        // A lease event: show its new state at once (the next snapshot agrees).
        const ev = JSON.parse(data) as { lease?: Lease };
        if (ev.lease) {
          const known = current.leases.some((l) => l.id === ev.lease!.id);
          if (!known) current.leases.unshift(ev.lease);
          liveLeases.set(ev.lease.id, { ...ev.lease, tenant_id: ev.lease.tenant_id ?? current.leases.find((l) => l.id === ev.lease!.id)?.tenant_id ?? "" });
          renderLeases();
        }
        stats.leaseEvents++;
      }
    },
    onState(s) {
      status.textContent = s === "live" ? "live" : "reconnecting…";
      status.className = `live ${s}`;
    },
    onAuthError(e: AuthError) {
      onAuthLost(e.message);
    },
  });

  const handle = {
    stop() {
      stream.stop();
      window.clearInterval(ticker);
    },
  };
  logout.addEventListener("click", () => onAuthLost(""));
  return handle;
}
