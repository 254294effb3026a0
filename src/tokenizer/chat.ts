// Chat prompts: the model's own Jinja template (`tokenizer.chat_template`), rendered with
// @huggingface/jinja the way transformers' apply_chat_template() does (messages,
// add_generation_prompt, bos_token, eos_token). A model without a template gets a plain
// "Role: text" layout.
//
// The rendered text may start with the BOS token's text (Llama 3's template writes
// "<|begin_of_text|>"); encode it with parseSpecial on, and with addBos off in that case, or the
// prompt gets two BOS tokens.

import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { GgufFile } from "../gguf/reader.js";
import { UsageError } from "../errors.js";

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
  const inputChars = messages.reduce((a, m) => a + m.content.length, 0);
  const render = (msgs: ChatMessage[]) => renderLimited(t, {
    ...opts.extra,
    messages: msgs.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: addGenerationPrompt,
    bos_token: src.bos ?? "",
    eos_token: src.eos ?? "",
  }, TEMPLATE_LIMITS.extraChars + 2 * inputChars);
  try {
    try {
      return render(messages);
    } catch (e) {
      // Templates without a system turn (Gemma 2) refuse one; clients send one anyway. It goes
      // in front of the first user message, as Gemma 3's own template (and llama.cpp) put it.
      const folded = e instanceof TemplateRefusal ? foldSystem(messages) : null;
      if (!folded) throw e;
      return render(folded);
    }
  } catch (e) {
    if (e instanceof TemplateLimitError) throw new UsageError(`${where} exceeds its limits (${e.message}): the model's chat template is not usable as written`);
    if (e instanceof TemplateRefusal) throw new UsageError(`${where} refuses these messages: ${e.message}`);
    throw new Error(`${where} failed to render: ${(e as Error).message}`);
  }
}

/** The messages with a leading system message joined to the first user message, or null. */
function foldSystem(messages: ChatMessage[]): ChatMessage[] | null {
  const [first, second, ...rest] = messages;
  if (first?.role !== "system" || second?.role !== "user") return null;
  return [{ role: "user", content: first.content + "\n\n" + second.content }, ...rest];
}

/**
 * Limits on a chat template's run. A GGUF's template is code from the file: a loop over
 * range(10^9) would allocate for minutes or abort V8. Real templates (Llama 3, Qwen 3, Gemma,
 * Phi) take a few hundred steps per message; the output is the messages plus a little markup.
 */
export const TEMPLATE_LIMITS = {
  steps: 2_000_000, // evaluated nodes
  rangeItems: 100_000, // elements all range() calls may produce together
  milliseconds: 2_000,
  extraChars: 1 << 20, // output beyond twice the messages' text
};

class TemplateLimitError extends Error {}
/** The template's own raise_exception(): it refuses these messages (Gemma 2: a system turn). */
class TemplateRefusal extends Error {}

/**
 * Template.render with the limits: the interpreter counts the nodes it evaluates and watches the
 * clock, and range() is ours (bounded); the other globals are the library's (its setupGlobals).
 */
function renderLimited(t: Template, vars: Record<string, unknown>, maxChars: number): string {
  const deadline = performance.now() + TEMPLATE_LIMITS.milliseconds;
  let steps = 0;
  let rangeItems = 0;
  // The library's evaluate() is where every node goes; wrapping it on the instance counts them.
  type Value = { value: unknown };
  type Evaluating = { evaluate(node: unknown, env: unknown): Value; run(program: unknown): Value };
  const env = new Environment();
  for (const [k, v] of Object.entries({ false: false, true: true, none: null, False: false, True: true, None: null })) env.set(k, v);
  env.set("raise_exception", (msg: unknown) => { throw new TemplateRefusal(String(msg)); });
  env.set("strftime_now", (format: string) => strftime(new Date(), format));
  env.set("range", (start: number, stop?: number, step = 1) => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    rangeItems += n;
    if (!(rangeItems <= TEMPLATE_LIMITS.rangeItems)) throw new TemplateLimitError(`range() asked for more than ${TEMPLATE_LIMITS.rangeItems} items`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  });
  for (const [k, v] of Object.entries(vars)) env.set(k, v);
  const interp = new (Interpreter as unknown as new (env: Environment) => Evaluating)(env);
  const evaluate = interp.evaluate.bind(interp);
  interp.evaluate = (node, e) => {
    if (++steps > TEMPLATE_LIMITS.steps) throw new TemplateLimitError(`more than ${TEMPLATE_LIMITS.steps} steps`);
    if ((steps & 1023) === 0 && performance.now() > deadline) throw new TemplateLimitError(`more than ${TEMPLATE_LIMITS.milliseconds} ms`);
    const v = evaluate(node, e);
    if (typeof v.value === "string" && v.value.length > maxChars) throw new TemplateLimitError(`a string of more than ${maxChars} characters`);
    return v;
  };
  const out = interp.run(t.parsed).value;
  if (typeof out !== "string") throw new Error("the template did not produce text");
  return out;
}

/** Python's strftime for the codes chat templates use (Llama 3.x writes "%d %b %Y"). */
function strftime(d: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const month = (style: "long" | "short") => d.toLocaleString("en-US", { month: style });
  return format.replace(/%[YmdbBHMS%]/g, (c) => ({
    "%Y": String(d.getFullYear()), "%m": pad(d.getMonth() + 1), "%d": pad(d.getDate()), "%b": month("short"), "%B": month("long"),
    "%H": pad(d.getHours()), "%M": pad(d.getMinutes()), "%S": pad(d.getSeconds()), "%%": "%",
  })[c] ?? c);
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

/**
 * A rendered template with the user's texts standing in as marks: the template's own text is
 * encoded with control tokens parsed (`<|im_start|>` is one token), each user text with them parsed
 * only if asked (`</s>` typed in a question stays text). Marks are found in order of appearance.
 */
export function encodeTemplated(
  tok: { encode(text: string, opts: { addBos: boolean; parseSpecial: boolean }): number[] },
  rendered: string,
  userTexts: ReadonlyMap<string, string>,
  parseSpecialUser = false,
): number[] {
  const marks = [...userTexts.keys()];
  const out: number[] = [];
  let rest = rendered;
  for (;;) {
    let at = -1;
    let mark = "";
    for (const m of marks) {
      const i = rest.indexOf(m);
      if (i >= 0 && (at < 0 || i < at)) { at = i; mark = m; }
    }
    if (at < 0) break;
    if (at > 0) out.push(...tok.encode(rest.slice(0, at), { addBos: false, parseSpecial: true }));
    out.push(...tok.encode(userTexts.get(mark)!, { addBos: false, parseSpecial: parseSpecialUser }));
    rest = rest.slice(at + mark.length);
  }
  if (rest) out.push(...tok.encode(rest, { addBos: false, parseSpecial: true }));
  return out;
}

/** A mark for the i-th user text: NUL-delimited, so no template or message contains it. */
export const userMark = (i: number) => `\u0000PARALLELCOMP_USER_${i}\u0000`;

/** A chat's prompt tokens: the model's template rendered, control tokens parsed only in its own text. */
export function encodeChat(
  tok: { encode(text: string, opts: { addBos: boolean; parseSpecial: boolean }): number[] },
  g: GgufFile | ChatTemplateSource,
  messages: ChatMessage[],
  opts: RenderChatOptions & { parseSpecialUser?: boolean } = {},
): number[] {
  const texts = new Map(messages.map((m, i) => [userMark(i), m.content]));
  const rendered = renderChat(g, messages.map((m, i) => ({ role: m.role, content: userMark(i) })), opts);
  for (const m of texts.keys()) {
    if (!rendered.includes(m)) throw new UsageError(`the chat template${g instanceof GgufFile ? ` of ${g.file}` : ""} changes or drops a message's text; it cannot be used with control tokens kept out of user text`);
  }
  return encodeTemplated(tok, rendered, texts, opts.parseSpecialUser);
}

