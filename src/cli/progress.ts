// Progress on stderr: the prefill bar (shown only when stderr is a terminal and the output is not
// --json) and a model download's (a bar on a terminal, else one line). cli-progress draws the bars;
// we give it the numbers.

import cliProgress from "cli-progress";
import type { Progress } from "../method/parallelcomp.js";
import type { DownloadProgress } from "../download/download.js";

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

/** Bytes as people read them: 812 B, 14.2 MiB, 3.91 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  for (; v >= 1024 && u < units.length - 1; u++) v /= 1024;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export interface DownloadReporter {
  onProgress(p: DownloadProgress): void;
  log(line: string): void;
  stop(): void;
}

export const DOWNLOAD_FORMAT = "downloading {name} {bar} {done}/{size} | {rate}/s | ETA {etaText}";

/**
 * A model download's progress on `stream`: a bar (bytes, rate, ETA) on a terminal, else one plain
 * line when the download starts; nothing at all when `quiet`.
 */
export function downloadReporter(quiet: boolean, stream: NodeJS.WriteStream = process.stderr): DownloadReporter {
  if (quiet) return { onProgress() {}, log() {}, stop() {} };
  const log = (line: string) => stream.write(`parallelcomp: ${line}\n`);
  let started = false;
  if (!stream.isTTY) {
    return {
      onProgress(p) {
        if (started) return;
        started = true;
        const size = p.total === null ? "size unknown" : formatBytes(p.total);
        log(`downloading ${p.url} (${size}${p.resumedFrom > 0 ? `, resuming at ${formatBytes(p.resumedFrom)}` : ""}) into ${p.file}`);
      },
      log,
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar({ stream, format: DOWNLOAD_FORMAT, hideCursor: true, barsize: 24, fps: 5 }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  return {
    onProgress(p) {
      const seconds = (performance.now() - t0) / 1000;
      const rate = seconds > 0 ? (p.bytes - p.resumedFrom) / seconds : 0;
      const fields = {
        name: p.url.slice(p.url.lastIndexOf("/") + 1),
        done: formatBytes(p.bytes),
        size: p.total === null ? "?" : formatBytes(p.total),
        rate: formatBytes(Math.round(rate)),
        etaText: p.total === null || rate <= 0 ? "-" : formatSeconds((p.total - p.bytes) / rate),
      };
      const total = Math.max(p.total ?? p.bytes, 1);
      if (!started) { bar.start(total, p.bytes, fields); started = true; }
      else bar.update(p.bytes, fields);
    },
    log(line) {
      if (started) bar.stop();
      started = false;
      log(line);
    },
    stop() { if (started) bar.stop(); },
  };
}
