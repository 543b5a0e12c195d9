// The fleet map: every GPU of every node as one cell on a canvas, coloured by its holder
// (internal, reserved, spot, inference, a noticed lease, idle). Nodes are blocks of their GPUs
// laid out in rows; the cell size shrinks with the fleet (14 px for a few nodes, 2 px for
// 100,000 GPUs). Drawn into one ImageData buffer: a 100,000-GPU fleet is one putImageData, not
// 100,000 fillRects. Hovering a cell shows its node, GPU and holder.
import { CLASS_COLORS } from "./charts";
import type { FleetMap, Holder } from "./types";

interface Layout {
  cell: number; // px per GPU cell (gap included)
  cols: number; // GPU columns per node block
  rowsPer: number; // GPU rows per node block
  blockW: number;
  blockH: number;
  perRow: number; // node blocks per canvas row
  width: number;
  height: number;
}

function rgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

const IDLE = -1;

export class FleetMapView {
  private readonly canvas: HTMLCanvasElement;
  private readonly tip: HTMLElement;
  private map: FleetMap | null = null;
  private layout: Layout | null = null;
  private owners: Int32Array = new Int32Array(0); // holder index per GPU, node-major
  private firstGpu: Int32Array = new Int32Array(0); // per node
  drawMs = 0; // the last draw's duration (the e2e test and the benchmark read it)

  constructor(private readonly host: HTMLElement) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "fleet-canvas";
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    this.tip.hidden = true;
    host.append(this.canvas, this.tip);
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => (this.tip.hidden = true));
    window.addEventListener("resize", () => this.draw());
  }

  update(map: FleetMap): void {
    this.map = map;
    let total = 0;
    this.firstGpu = new Int32Array(map.nodes.length);
    map.nodes.forEach((n, i) => {
      this.firstGpu[i] = total;
      total += n[2];
    });
    this.owners = new Int32Array(total).fill(IDLE);
    map.nodes.forEach((n, i) => {
      let g = this.firstGpu[i];
      const end = g + n[2];
      for (const [h, count] of n[3]) {
        for (let k = 0; k < count && g < end; ++k) this.owners[g++] = h;
      }
    });
    this.draw();
  }

  private computeLayout(): Layout {
    const map = this.map!;
    const width = Math.max(300, Math.floor(this.host.clientWidth || 900));
    const maxGpus = map.nodes.reduce((m, n) => Math.max(m, n[2]), 1);
    const cols = Math.min(maxGpus, 8);
    const rowsPer = Math.ceil(maxGpus / cols);
    const total = this.owners.length || 1;
    // Aim the whole map at about 600 px of height at most.
    const area = width * 600;
    const cell = Math.max(2, Math.min(14, Math.floor(Math.sqrt(area / (total * 1.3)))));
    const gap = cell >= 6 ? 3 : 1;
    const blockW = cols * cell + gap;
    const blockH = rowsPer * cell + gap;
    const perRow = Math.max(1, Math.floor(width / blockW));
    const height = Math.ceil(map.nodes.length / perRow) * blockH;
    return { cell, cols, rowsPer, blockW, blockH, perRow, width, height };
  }

  private colorOf(h: number): [number, number, number] {
    if (h === IDLE) return rgb(CLASS_COLORS.idle);
    const holder = this.map!.holders[h];
    return rgb(holder.noticed ? CLASS_COLORS.noticed : CLASS_COLORS[holder.class] ?? "#000000");
  }

  draw(): void {
    if (!this.map) return;
    const t0 = performance.now();
    const L = (this.layout = this.computeLayout());
    this.canvas.width = L.width;
    this.canvas.height = Math.max(1, L.height);
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(L.width, Math.max(1, L.height));
    const px = img.data;
    const palette = new Map<number, [number, number, number]>();
    const inner = L.cell >= 4 ? L.cell - 1 : L.cell; // a 1 px seam between larger cells
    this.map.nodes.forEach((n, i) => {
      const bx = (i % L.perRow) * L.blockW;
      const by = Math.floor(i / L.perRow) * L.blockH;
      for (let g = 0; g < n[2]; ++g) {
        const h = this.owners[this.firstGpu[i] + g];
        let c = palette.get(h);
        if (!c) {
          c = this.colorOf(h);
          palette.set(h, c);
        }
        const x0 = bx + (g % L.cols) * L.cell;
        const y0 = by + Math.floor(g / L.cols) * L.cell;
        for (let y = y0; y < y0 + inner; ++y) {
          let o = (y * L.width + x0) * 4;
          for (let x = 0; x < inner; ++x, o += 4) {
            px[o] = c[0];
            px[o + 1] = c[1];
            px[o + 2] = c[2];
            px[o + 3] = 255;
          }
        }
      }
    });
    ctx.putImageData(img, 0, 0);
    this.drawMs = performance.now() - t0;
    this.canvas.dataset.gpus = String(this.owners.length);
    this.canvas.dataset.nodes = String(this.map.nodes.length);
  }

  private hover(e: MouseEvent): void {
    const L = this.layout;
    const map = this.map;
    if (!L || !map) return;
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const node = Math.floor(y / L.blockH) * L.perRow + Math.floor(x / L.blockW);
    // A pixel of the gap between blocks belongs to the cell beside it.
    const gx = Math.min(L.cols - 1, Math.floor((x % L.blockW) / L.cell));
    const gy = Math.min(L.rowsPer - 1, Math.floor((y % L.blockH) / L.cell));
    const n = map.nodes[node];
    if (!n || x >= L.perRow * L.blockW) {
      this.tip.hidden = true;
      return;
    }
    const gpu = gy * L.cols + gx;
    if (gpu >= n[2]) {
      this.tip.hidden = true;
      return;
    }
    const h = this.owners[this.firstGpu[node] + gpu];
    const holder: Holder | null = h === IDLE ? null : map.holders[h];
    const lines = [`${n[0]} (pool ${map.pools[n[1]] ?? n[1]}), GPU ${gpu}`];
    if (!holder) {
      lines.push("idle");
    } else {
      lines.push(holder.noticed ? `${holder.class}, reclaim notice` : holder.class);
      if (holder.lease) lines.push(`lease ${holder.lease}`, `tenant ${holder.tenant_id}`, `state ${holder.state}`);
      if (holder.reclaim_at) lines.push(`reclaim at ${holder.reclaim_at}`);
      if (holder.replica) lines.push(`replica ${holder.replica} (${holder.model})`);
    }
    this.tip.textContent = lines.join("\n");
    this.tip.hidden = false;
    this.tip.style.left = `${Math.min(x + 14, L.width - 220)}px`;
    this.tip.style.top = `${y + 14}px`;
  }
}
