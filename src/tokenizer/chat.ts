// Chat prompts: the model's own Jinja template (`tokenizer.chat_template`), rendered with
// @huggingface/jinja the way transformers' apply_chat_template() does (messages,
// add_generation_prompt, bos_token, eos_token). A model without a template gets a plain
// "Role: text" layout.
//
// The rendered text may start with the BOS token's text (Llama 3's template writes
// "<|begin_of_text|>"); encode it with parseSpecial on, and with addBos off in that case, or the
// prompt gets two BOS tokens.

import { Template } from "@huggingface/jinja";
import { GgufFile } from "../gguf/reader.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatTemplateSource {
  template?: string;
  bos?: string;
  eos?: string;
}

export interface RenderChatOptions {
  /** End with the opening of an assistant turn, for the model to complete. Default true. */
  addGenerationPrompt?: boolean;
  /** More template variables, e.g. { enable_thinking: false } for Qwen 3. */
  extra?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

export function renderChat(g: GgufFile | ChatTemplateSource, messages: ChatMessage[], opts: RenderChatOptions = {}): string {
  const src = g instanceof GgufFile ? fromGguf(g) : g;
  const addGenerationPrompt = opts.addGenerationPrompt ?? true;
  if (!src.template) return plainLayout(messages, addGenerationPrompt);
  const where = g instanceof GgufFile ? `tokenizer.chat_template of ${g.file}` : "chat template";
  let t = compiled.get(src.template);
  if (!t) {
    try {
      t = new Template(src.template);
    } catch (e) {
      throw new Error(`${where} does not parse: ${(e as Error).message}`);
    }
    if (compiled.size > 16) compiled.clear();
    compiled.set(src.template, t);
  }
  try {
    return t.render({
      ...opts.extra,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: src.bos ?? "",
      eos_token: src.eos ?? "",
    });
  } catch (e) {
    throw new Error(`${where} failed to render: ${(e as Error).message}`);
  }
}

function fromGguf(g: GgufFile): ChatTemplateSource {
  const tokens = g.value("tokenizer.ggml.tokens");
  const text = (key: string): string | undefined => {
    if (!g.has(key) || !Array.isArray(tokens)) return undefined;
    const t = (tokens as unknown[])[g.number(key)];
    return typeof t === "string" ? t : undefined;
  };
  return {
    template: g.string("tokenizer.chat_template", "") || undefined,
    bos: text("tokenizer.ggml.bos_token_id"),
    eos: text("tokenizer.ggml.eos_token_id"),
  };
}

const ROLE_NAME: Record<ChatMessage["role"], string> = { system: "System", user: "User", assistant: "Assistant" };

/** "System: ...\n\nUser: ...\n\nAssistant:" for models without a template. */
function plainLayout(messages: ChatMessage[], addGenerationPrompt: boolean): string {
  const turns = messages.map((m) => `${ROLE_NAME[m.role] ?? m.role}: ${m.content}`);
  if (addGenerationPrompt) turns.push("Assistant:");
  return turns.join("\n\n");
}
