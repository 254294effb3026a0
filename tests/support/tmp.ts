import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = "parallelcomp-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic token ids in [0, n). */
export function randomTokens(count: number, n: number, seed: number): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out.push(a % n);
  }
  return out;
}

/** The python with numpy that runs gguf-py: $PYTHON (set by .ci/run when it installs one) or python3. */
export const PYTHON = process.env.PYTHON ?? "python3";
