// From a text request `{ instruction, context, question, answerPrefix }` to the token parts the
// method works on. With a chat model the template wraps them: its opening and the instruction form
// the chunk header; the question, its closing and the assistant turn's opening (then the answer
// prefix) form the query. A model without a template gets the plain layout our own model is
// trained on (tools/train/tasks.py `render`):
//   [instruction "\n\n"] context "\n\n" question "\n" answerPrefix

import type { GgufFile } from "../gguf/reader.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { encodeTemplated, renderChat, userMark } from "../tokenizer/chat.js";
import type { BoundaryOf } from "./chunking.js";
import type { TokenRequest } from "./parallelcomp.js";
import { UsageError } from "../errors.js";

export interface TextRequest {
  instruction?: string;
  context: string;
  question: string;
  answerPrefix?: string;
  /** Parse control-token text (`<|im_end|>`, `</s>`) typed in the request as control tokens. Default false. */
  parseSpecial?: boolean;
}

const CONTEXT_MARK = "\u0000PARALLELCOMP_CONTEXT\u0000";
const INSTRUCTION_MARK = userMark(0);
const QUESTION_MARK = userMark(1);

export function tokenizeRequest(tok: Tokenizer, gguf: GgufFile, r: TextRequest): TokenRequest {
  if (r.context.length === 0) throw new UsageError("the context is empty");
  if (r.question.trim().length === 0) throw new UsageError("the question is empty");
  const instruction = r.instruction ?? "";
  const answerPrefix = r.answerPrefix ?? "";
  const special = r.parseSpecial ?? false;
  const user = (text: string) => tok.encode(text, { addBos: false, parseSpecial: special });
  const SEPARATOR = "\n\n"; // between the context and the question, in both layouts
  let header: number[];
  let query: number[];
  if (gguf.has("tokenizer.chat_template")) {
    const content = (instruction ? INSTRUCTION_MARK + "\n\n" : "") + CONTEXT_MARK + SEPARATOR + QUESTION_MARK;
    const rendered = renderChat(gguf, [{ role: "user", content }], { addGenerationPrompt: true });
    const at = rendered.indexOf(CONTEXT_MARK);
    if (at < 0 || !rendered.includes(QUESTION_MARK) || (instruction && !rendered.includes(INSTRUCTION_MARK))) {
      throw new Error(`the chat template of ${gguf.file} dropped the user message`);
    }
    // Control tokens are parsed in the template's own text, never in the user's (unless asked).
    header = encodeTemplated(tok, rendered.slice(0, at), new Map([[INSTRUCTION_MARK, instruction]]), special);
    query = [...encodeTemplated(tok, rendered.slice(at + CONTEXT_MARK.length + SEPARATOR.length), new Map([[QUESTION_MARK, r.question]]), special), ...user(answerPrefix)];
  } else {
    header = instruction ? user(instruction + "\n\n") : [];
    query = user(r.question + "\n" + answerPrefix);
  }
  let bos: number | null = tok.addBos ? tok.bos : null;
  if (tok.bos !== null && header[0] === tok.bos) {
    header = header.slice(1); // the template wrote BOS itself
    bos = tok.bos;
  }
  const separator = tok.encode(SEPARATOR, { addBos: false, parseSpecial: false });
  return {
    bos,
    header,
    context: user(r.context),
    query: [...separator, ...query],
    separator: separator.length,
  };
}

/** Line, sentence, clause and word ends, from each token's decoded text (cached per id). */
export function boundaryOf(tok: Tokenizer): BoundaryOf {
  const cache = new Map<number, 0 | 1 | 2 | 3 | 4>();
  return (id) => {
    let kind = cache.get(id);
    if (kind === undefined) {
      const text = tok.decode([id]);
      kind = /\n\s*$/.test(text) ? 4 : /[.!?]["')\]]?\s*$/.test(text) ? 3 : /[,;]\s*$/.test(text) ? 2 : /\s$/.test(text) ? 1 : 0;
      cache.set(id, kind);
    }
    return kind;
  };
}
