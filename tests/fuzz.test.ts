// 200 mutated GGUF files (seeded) through `inspect`, `ask` and (every 20th) `serve`, each in its
// own process: every run either works or ends with one clear error line; none crashes, hangs past
// 30 s or takes more than 2 GB. `npm run fuzz` runs the longer version (600 files).

import { test } from "node:test";
import assert from "node:assert/strict";
import { fuzz } from "../tools/fuzz.js";
import { tempDir } from "./support/tmp.js";

test("200 mutated model files: 0 crashes, 0 hangs, 0 runs over 2 GB through inspect, ask and serve", async () => {
  const runs = await fuzz({ dir: tempDir(), files: 200, seed: 11, serveEvery: 20 });
  const bad = runs.filter((r) => r.outcome === "crash" || r.outcome === "hang" || r.outcome === "memory");
  assert.deepEqual(bad.map((r) => `${r.outcome}: ${r.command} [${r.mutation}] ${r.detail}`), []);
  assert.equal(runs.length, 200 * 2 + 10);
  assert.ok(runs.filter((r) => r.outcome === "ran").length >= 40, "the unharmed and lightly harmed files still run");
  assert.ok(runs.filter((r) => r.outcome === "error").length >= 150, "most mutations are caught as errors");
});
