// The prefill progress bar on stderr (cli-progress draws it; we give it the numbers). Shown only
// when stderr is a terminal and the output is not --json.

import cliProgress from "cli-progress";
import type { Progress } from "../method/parallelcomp.js";

export interface ProgressBar {
  update(p: Progress): void;
  stop(): void;
}

/** The bar's text for one update: chunks done / total, context tokens/s and the ETA. */
export function progressFields(p: Progress, seconds: number): { tps: string; eta: string } {
  const rate = seconds > 0 ? p.tokensDone / seconds : 0;
  const left = rate > 0 ? (p.tokens - p.tokensDone) / rate : NaN;
  return { tps: rate > 0 ? Math.round(rate).toLocaleString("en-US") : "-", eta: formatSeconds(left) };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "-";
  const r = Math.max(0, Math.round(s));
  return r >= 60 ? `${Math.floor(r / 60)}m${String(r % 60).padStart(2, "0")}s` : `${r}s`;
}

export const BAR_FORMAT = "reading {bar} {value}/{total} chunks | {tps} tok/s | ETA {etaText}";

/** A bar on `stream` when it is a terminal and `enabled`; otherwise one that does nothing. */
export function progressBar(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!enabled || !stream.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    stream,
    format: BAR_FORMAT,
    hideCursor: true,
    clearOnComplete: true,
    barsize: 24,
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  let started = false;
  return {
    update(p) {
      const f = progressFields(p, (performance.now() - t0) / 1000);
      if (!started) { bar.start(p.chunks, p.chunksDone, { tps: f.tps, etaText: f.eta }); started = true; }
      else bar.update(p.chunksDone, { tps: f.tps, etaText: f.eta });
    },
    stop() { if (started) bar.stop(); },
  };
}
