// Test helpers for using llama.cpp as an outside reference: its source tree (from the git
// bundle node-llama-cpp ships) and the prebuilt ggml libraries of node-llama-cpp.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BUNDLE = join("node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
const X64_BINS = join("node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64");

/** The repository root: the nearest folder above this file holding package.json (dist/ has none). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root (package.json) not found above tests/support");
    dir = up;
  }
  return dir;
}

let sourceDir: string | undefined;

/**
 * Path of an unpacked llama.cpp source tree (ggml/, gguf-py/, ...). The bundle is cloned once
 * into os.tmpdir(), in a folder named by the bundle's size and mtime so a new bundle gets a
 * new folder, and reused by later calls and later processes.
 */
export function llamaCppSource(): string {
  if (sourceDir) return sourceDir;
  const bundle = join(repoRoot(), BUNDLE);
  if (!existsSync(bundle)) throw new Error(`llama.cpp source bundle not found at ${bundle} (run npm install)`);
  const st = statSync(bundle);
  const dir = join(tmpdir(), `parallelcomp-llama.cpp-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (!existsSync(dir)) unpackBundle(bundle, dir);
  sourceDir = dir;
  return dir;
}

/** Clone into a staging folder, then rename: `dir` either doesn't exist or is complete. */
function unpackBundle(bundle: string, dir: string): void {
  const staging = mkdtempSync(`${dir}.partial-`);
  try {
    execFileSync("git", ["-c", "advice.detachedHead=false", "clone", "-q", bundle, staging], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      renameSync(staging, dir);
    } catch (e) {
      if (!existsSync(dir)) throw e; // otherwise another process finished first: use theirs
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Folder of node-llama-cpp's prebuilt linux-x64 libraries (libggml-base.so, the
 * libggml-cpu-<cpu>.so variants), or undefined on other platforms or when not installed.
 */
export function llamaCppPrebuiltBins(): string | undefined {
  if (process.platform !== "linux" || process.arch !== "x64") return undefined;
  const dir = join(repoRoot(), X64_BINS);
  return existsSync(join(dir, "libggml-base.so")) ? dir : undefined;
}
