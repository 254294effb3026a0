// From a text request `{ instruction, context, question, answerPrefix }` to the token parts the
// method works on. With a chat model the template wraps them: its opening and the instruction form
// the chunk header; the question, its closing and the assistant turn's opening (then the answer
// prefix) form the query. A model without a template gets the plain layout our own model is
// trained on (tools/train/tasks.py `render`):
//   [instruction "\n\n"] context "\n\n" question "\n" answerPrefix

import type { GgufFile } from "../gguf/reader.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { renderChat } from "../tokenizer/chat.js";
import type { BoundaryOf } from "./chunking.js";
import type { TokenRequest } from "./parallelcomp.js";

export interface TextRequest {
  instruction?: string;
  context: string;
  question: string;
  answerPrefix?: string;
}

const CONTEXT_MARK = "\u0000PARALLELCOMP_CONTEXT\u0000";

export function tokenizeRequest(tok: Tokenizer, gguf: GgufFile, r: TextRequest): TokenRequest {
  if (r.context.length === 0) throw new Error("the context is empty");
  if (r.question.trim().length === 0) throw new Error("the question is empty");
  const instruction = r.instruction ?? "";
  const answerPrefix = r.answerPrefix ?? "";
  let headerText: string;
  let queryText: string;
  const SEPARATOR = "\n\n"; // between the context and the question, in both layouts
  if (gguf.has("tokenizer.chat_template")) {
    const content = (instruction ? instruction + "\n\n" : "") + CONTEXT_MARK + SEPARATOR + r.question;
    const rendered = renderChat(gguf, [{ role: "user", content }], { addGenerationPrompt: true });
    const at = rendered.indexOf(CONTEXT_MARK);
    if (at < 0) throw new Error(`the chat template of ${gguf.file} dropped the user message`);
    headerText = rendered.slice(0, at);
    queryText = rendered.slice(at + CONTEXT_MARK.length + SEPARATOR.length) + answerPrefix;
  } else {
    headerText = instruction ? instruction + "\n\n" : "";
    queryText = r.question + "\n" + answerPrefix;
  }
  // Control tokens are parsed in the template's own text, never in the user's context.
  let header = tok.encode(headerText, { addBos: false, parseSpecial: true });
  let bos: number | null = tok.addBos ? tok.bos : null;
  if (tok.bos !== null && header[0] === tok.bos) {
    header = header.slice(1); // the template wrote BOS itself
    bos = tok.bos;
  }
  const separator = tok.encode(SEPARATOR, { addBos: false, parseSpecial: false });
  return {
    bos,
    header,
    context: tok.encode(r.context, { addBos: false, parseSpecial: false }),
    query: [...separator, ...tok.encode(queryText, { addBos: false, parseSpecial: true })],
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
