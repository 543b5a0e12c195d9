// Time-series charts on uPlot (canvas): GPUs by class stacked, and plain line charts. Each
// chart is created once and fed new data in place (setData), so live updates do not rebuild
// the DOM.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import type { Series } from "./types";

export const CLASS_COLORS: Record<string, string> = {
  internal: "#4a6fa5",
  reserved: "#8e5cc4",
  spot: "#3aa776",
  inference: "#e59a2f",
  idle: "#d9dde3",
  noticed: "#d64545",
};

const CLASSES = ["internal", "reserved", "spot", "inference", "idle"] as const;

// The server's clock is UTC, and so are the axes (not the browser's time zone).
const tzDate = (ts: number) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

function width(el: HTMLElement): number {
  return Math.max(280, Math.floor(el.clientWidth || 600));
}

// Every chart resizes with its container.
const charts: { plot: uPlot; el: HTMLElement }[] = [];
let resizeArmed = false;
function track(plot: uPlot, el: HTMLElement): void {
  charts.push({ plot, el });
  if (resizeArmed) return;
  resizeArmed = true;
  window.addEventListener("resize", () => {
    for (const c of charts) c.plot.setSize({ width: width(c.el), height: c.plot.height });
  });
}

export interface Chart {
  update(s: Series): void;
}

// GPUs by class over time, stacked: each class is drawn as the cumulative sum up to it,
// biggest first so that the smaller sums paint over it; the legend shows each class's own
// count.
export function gpuChart(el: HTMLElement, title: string): Chart {
  let raw: number[][] = [];
  const opts: uPlot.Options = {
    title,
    width: width(el),
    height: 260,
    tzDate,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    axes: [{}, { label: "GPUs", size: 60 }],
    series: [
      {},
      ...[...CLASSES].reverse().map((c) => ({
        label: c,
        stroke: CLASS_COLORS[c],
        fill: CLASS_COLORS[c],
        width: 1,
        points: { show: false },
        value: (_u: uPlot, _v: number | null, si: number, i: number | null) =>
          i == null || !raw[si] ? "--" : String(raw[si][i]),
      })),
    ],
  };
  const plot = new uPlot(opts, [[], [], [], [], [], []], el);
  track(plot, el);
  return {
    update(s: Series) {
      const own = [s.internal, s.reserved, s.spot, s.inference, s.idle];
      const cum: number[][] = [];
      let acc = s.t.map(() => 0);
      for (const v of own) {
        acc = acc.map((a, i) => a + (v[i] ?? 0));
        cum.push(acc);
      }
      // Series order on the chart: idle (the total) down to internal.
      raw = [s.t, ...own.slice().reverse()];
      plot.setData([s.t, ...cum.slice().reverse()]);
    },
  };
}

export interface LineSpec {
  label: string;
  color: string;
  pick: (s: Series) => number[];
  scale?: string;
  dash?: number[];
}

export function lineChart(el: HTMLElement, title: string, lines: LineSpec[], yLabel: string, y2Label?: string): Chart {
  const axes: uPlot.Axis[] = [{}, { label: yLabel, size: 60 }];
  const scales: uPlot.Scales = { x: { time: true } };
  if (y2Label) {
    axes.push({ label: y2Label, scale: "y2", side: 1, size: 60, grid: { show: false } });
    scales.y2 = {};
  }
  const opts: uPlot.Options = {
    title,
    width: width(el),
    height: 220,
    tzDate,
    scales,
    axes,
    series: [
      {},
      ...lines.map((l) => ({
        label: l.label,
        stroke: l.color,
        width: 2,
        scale: l.scale ?? "y",
        dash: l.dash,
        points: { show: false },
      })),
    ],
  };
  const plot = new uPlot(opts, [[], ...lines.map(() => [])], el);
  track(plot, el);
  return {
    update(s: Series) {
      plot.setData([s.t, ...lines.map((l) => l.pick(s))]);
    },
  };
}
