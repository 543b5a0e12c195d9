// The shapes of the owner API's dashboard payloads (src/api/dashboard.cc) and of the sim
// report embedded by `landlord sim --html` (src/sim/report.cc).

export interface Series {
  t: number[]; // seconds since the epoch (server clock)
  internal: number[];
  reserved: number[];
  spot: number[];
  inference: number[];
  idle: number[];
  spot_price: number[]; // $ per GPU-hour
  demand: number[];
  forecast: number[];
  revenue_usd: number[];
  revenue_per_gpu_h?: number[];
}

export interface Lease {
  id: string;
  tenant_id: string;
  kind: string;
  state: string;
  gpus: number;
  pool: string;
  price_per_gpu_hour: string;
  created_at: string | null;
  started_at: string | null;
  noticed_at: string | null;
  reclaim_at: string | null;
  term_end: string | null;
  ended_at: string | null;
  end_reason: string | null;
  nodes: { node: string; gpus: number }[];
}

export interface Reclaim {
  lease: string;
  tenant_id: string;
  gpus: number;
  state: string;
  noticed_at: string;
  reclaim_at: string | null;
  ended_at: string | null;
}

export interface Tenant {
  id: string;
  name: string;
  balance: string;
  billed: string;
  tokens: number;
  live_leases: number;
  gpus: number;
}

export interface Report {
  billed: { spot: string; reserved: string; tokens: string; total: string; input_tokens: number; output_tokens: number };
  since_start: {
    capacity_gpu_h: number;
    revenue_usd: number;
    revenue_per_gpu_h: number;
    cost_per_mtok_usd: number | null;
  };
}

export interface Dashboard {
  now: string;
  now_s: number;
  clock_speed: number;
  policy: string;
  gpus: { capacity: number; internal: number; reserved: number; spot: number; inference: number; idle: number; waiting: number };
  spot_price: string;
  report: Report;
  series: Series;
  leases: Lease[];
  reclaims: Reclaim[];
  tenants: Tenant[];
  replicas: { id: string; model: string; state: string }[];
}

export interface Holder {
  class: string; // internal | reserved | spot | inference
  noticed: boolean;
  lease?: string;
  tenant_id?: string;
  state?: string;
  reclaim_at?: string;
  replica?: string;
  model?: string;
}

// [name, pool index, GPUs, [[holder index, GPUs], ...]]
export type MapNode = [string, number, number, [number, number][]];

export interface FleetMap {
  now: string;
  pools: string[];
  holders: Holder[];
  nodes: MapNode[];
}

export interface SimPolicy {
  name: string;
  metrics: Record<string, number | null>;
}

export interface SimReport {
  title: string;
  trace: Record<string, unknown>;
  policies: SimPolicy[];
  series: Series; // the landlord policy's run
}
