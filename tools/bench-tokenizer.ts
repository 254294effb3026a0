// Tokenizer speed on 1 MB of English text.
//
//   node dist/tools/bench-tokenizer.js [--text FILE] [--mb N] [vocab.gguf ...]
//
// Without vocabularies it uses llama.cpp's test vocabularies (Llama 3, Qwen 2, GPT-2, Llama 2
// SentencePiece) from the llama.cpp source bundle node-llama-cpp ships. Without --text, the
// English text is the licence texts and package copyright files Debian ships, plus llama.cpp's
// documentation, in a fixed order, cut to N MB (default 1).
//
// For each vocabulary: load time, first encode of the whole text on a fresh tokenizer (empty
// word cache: the number that matters), a second encode (warm cache), one 500 KB string in a
// single call, and decoding. Timings share the machine with whatever else runs.

import * as fs from "node:fs";
import * as path from "node:path";
import { GgufFile } from "../src/gguf/reader.js";
import { loadTokenizer } from "../src/tokenizer/index.js";
import { llamaCppSource } from "../tests/support/llamacpp.js";

function englishText(bytes: number): string {
  const parts: string[] = [];
  let n = 0;
  const add = (file: string) => {
    if (n >= bytes) return;
    try {
      const t = fs.readFileSync(file, "utf8");
      parts.push(t);
      n += Buffer.byteLength(t);
    } catch {
      // unreadable: skip
    }
  };
  const licenses = "/usr/share/common-licenses";
  if (fs.existsSync(licenses)) for (const f of fs.readdirSync(licenses).sort()) add(path.join(licenses, f));
  const docs = path.join(llamaCppSource(), "docs");
  if (fs.existsSync(docs)) for (const f of fs.readdirSync(docs).filter((x) => x.endsWith(".md")).sort()) add(path.join(docs, f));
  const pkgDocs = "/usr/share/doc";
  if (fs.existsSync(pkgDocs)) for (const d of fs.readdirSync(pkgDocs).sort()) add(path.join(pkgDocs, d, "copyright"));
  if (n < bytes) throw new Error(`only ${n} bytes of English text found; pass --text FILE`);
  const all = Buffer.from(parts.join("\n"), "utf8").subarray(0, bytes);
  return new TextDecoder().decode(all).replace(/\uFFFD$/, ""); // the cut may split a character
}

function main(): void {
  const args = process.argv.slice(2);
  let textFile: string | undefined;
  let mb = 1;
  const vocabs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--text") textFile = args[++i];
    else if (args[i] === "--mb") mb = Number(args[++i]);
    else vocabs.push(args[i]);
  }
  if (vocabs.length === 0) {
    const models = path.join(llamaCppSource(), "models");
    for (const v of ["llama-bpe", "qwen2", "gpt-2", "llama-spm"]) vocabs.push(path.join(models, `ggml-vocab-${v}.gguf`));
  }
  const text = textFile ? fs.readFileSync(textFile, "utf8") : englishText(Math.round(mb * 1024 * 1024));
  const bytes = Buffer.byteLength(text);
  const half = text.slice(0, 500_000);
  console.log(`text: ${(bytes / 1048576).toFixed(2)} MB${textFile ? ` from ${textFile}` : " of English"}; node ${process.version}`);
  console.log("vocab            load ms  tokens    cold ms  cold MB/s  warm ms  500KB-call ms  decode ms");
  for (const file of vocabs) {
    const t0 = performance.now();
    const tok = loadTokenizer(GgufFile.open(file));
    const load = performance.now() - t0;
    const t1 = performance.now();
    const ids = tok.encode(text, { addBos: false });
    const cold = performance.now() - t1;
    const t2 = performance.now();
    tok.encode(text, { addBos: false });
    const warm = performance.now() - t2;
    const fresh = loadTokenizer(GgufFile.open(file));
    const t3 = performance.now();
    fresh.encode(half, { addBos: false });
    const oneCall = performance.now() - t3;
    const t4 = performance.now();
    tok.decode(ids);
    const dec = performance.now() - t4;
    const name = path.basename(file).replace(/^ggml-vocab-|\.gguf$/g, "");
    console.log(
      `${name.padEnd(16)} ${load.toFixed(0).padStart(7)}  ${String(ids.length).padEnd(8)}  ${cold.toFixed(0).padStart(7)}  ${(bytes / 1048576 / (cold / 1000)).toFixed(2).padStart(9)}  ${warm.toFixed(0).padStart(7)}  ${oneCall.toFixed(0).padStart(13)}  ${dec.toFixed(0).padStart(9)}`,
    );
  }
}

main();
