// Extracts the C headers of the pinned llama.cpp (llama.h and the ggml headers it includes) from
// the git bundle that node-llama-cpp ships, into ./include (ignored by git). The binding is built
// against these and loads libllama at run time, so no llama.cpp code lives in this repository.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const HEADERS = [
  "include/llama.h",
  "ggml/include/ggml.h",
  "ggml/include/ggml-cpu.h",
  "ggml/include/ggml-backend.h",
  "ggml/include/ggml-alloc.h",
  "ggml/include/ggml-opt.h",
  "ggml/include/gguf.h",
];

/** node-llama-cpp's folder: resolved from our package (its exports hide package.json, so walk up from its entry). */
function nodeLlamaCppDir() {
  try {
    let dir = dirname(createRequire(join(here, "..", "..", "package.json")).resolve("node-llama-cpp"));
    while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
    return dir;
  } catch {
    return null;
  }
}
const pkgDir = nodeLlamaCppDir();
const bundle = pkgDir && join(pkgDir, "llama", "gitRelease.bundle");
if (!bundle || !existsSync(bundle)) {
  console.error("parallelcomp: node-llama-cpp's llama.cpp bundle not found; the llama.cpp backend is not built");
  process.exit(1);
}
const out = join(here, "include");
const repo = mkdtempSync(join(tmpdir(), "parallelcomp-llama-headers-"));
try {
  execFileSync("git", ["clone", "-q", "--bare", bundle, repo], { stdio: ["ignore", "ignore", "pipe"] });
  mkdirSync(out, { recursive: true });
  for (const h of HEADERS) {
    const text = execFileSync("git", ["--git-dir", repo, "show", `HEAD:${h}`], { maxBuffer: 16 << 20 });
    writeFileSync(join(out, h.split("/").pop()), text);
  }
} finally {
  rmSync(repo, { recursive: true, force: true });
}
