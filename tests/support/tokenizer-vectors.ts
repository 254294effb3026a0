// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf with .inp / .out), read the way
// its tests/test-tokenizer-0.cpp reads them: inputs split on "\n__ggml_vocab_test__\n", one
// line of space-separated ids per input, kept in a map (a repeated input keeps its last ids).

import * as fs from "node:fs";
import * as path from "node:path";

export interface VocabVectors {
  name: string; // e.g. "llama-bpe"
  gguf: string;
  tests: Map<string, number[]>;
}

export function vocabFiles(llamaCppDir: string): string[] {
  const dir = path.join(llamaCppDir, "models");
  return fs.readdirSync(dir).filter((f) => /^ggml-vocab-.*\.gguf$/.test(f)).sort().map((f) => path.join(dir, f));
}

export function vocabName(gguf: string): string {
  return path.basename(gguf).replace(/^ggml-vocab-/, "").replace(/\.gguf$/, "");
}

export function readVectors(gguf: string): VocabVectors | undefined {
  if (!fs.existsSync(gguf + ".inp") || !fs.existsSync(gguf + ".out")) return undefined;
  const raw = fs.readFileSync(gguf + ".inp", "utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const inputs: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      inputs.push(raw.slice(pos));
      break;
    }
    inputs.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  // std::getline: a final newline does not start another line
  const outText = fs.readFileSync(gguf + ".out", "utf8");
  const lines = outText.split("\n");
  if (outText.endsWith("\n")) lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${gguf}: ${inputs.length} inputs but ${lines.length} output lines`);
  const tests = new Map<string, number[]>();
  inputs.forEach((s, i) => {
    const o = lines[i].trim();
    tests.set(s, o === "" ? [] : o.split(" ").map(Number));
  });
  return { name: vocabName(gguf), gguf, tests };
}
