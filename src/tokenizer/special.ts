// Finding special tokens in text before pre-tokenization, so "<|im_start|>" becomes one id
// instead of "<", "|", "im", ... Control tokens are looked for only when asked (parseSpecial);
// user-defined tokens always, as in llama.cpp and Hugging Face.
//
// Matching is leftmost-longest (a trie walk from each position), which is what Hugging Face
// does. llama.cpp instead places the longest tokens first everywhere; the two differ only when
// one special token's end overlaps another's start in the text.

import { STRIP_LEFT, STRIP_RIGHT, TokenType, isSpecialType, type Vocab } from "./vocab.js";

interface Node {
  next: Map<number, Node>;
  id: number; // -1: no token ends here
}

/** Text pieces (strings) and matched special token ids, in order; strings are never empty. */
export type Fragment = string | number;

export class SpecialMatcher {
  private readonly root: Node = { next: new Map(), id: -1 };
  private readonly first = new Uint8Array(65536);
  readonly size: number;

  constructor(private readonly vocab: Vocab, includeControl: boolean) {
    let size = 0;
    for (let id = 0; id < vocab.tokens.length; id++) {
      const t = vocab.types[id];
      if (!isSpecialType(t)) continue;
      if (!includeControl && t !== TokenType.USER_DEFINED) continue;
      const text = vocab.tokens[id];
      let node = this.root;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) {
          child = { next: new Map(), id: -1 };
          node.next.set(c, child);
        }
        node = child;
      }
      // Two ids with one text: the map from text to id decides, as it does everywhere else.
      node.id = vocab.tokenToId.get(text) ?? id;
      this.first[text.charCodeAt(0)] = 1;
      size++;
    }
    this.size = size;
  }

  split(text: string): Fragment[] {
    const out: Fragment[] = [];
    if (this.size === 0) {
      if (text.length > 0) out.push(text);
      return out;
    }
    const { first, root, vocab } = this;
    let start = 0; // start of the pending text piece
    let i = 0;
    while (i < text.length) {
      if (first[text.charCodeAt(i)] === 0) {
        i++;
        continue;
      }
      let node: Node | undefined = root;
      let bestId = -1;
      let bestEnd = -1;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text.charCodeAt(j));
        if (!node) break;
        if (node.id >= 0) {
          bestId = node.id;
          bestEnd = j + 1;
        }
      }
      if (bestId < 0) {
        i++;
        continue;
      }
      let end = i;
      if (vocab.strip[bestId] & STRIP_LEFT) while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
      if (end > start) out.push(text.slice(start, end));
      out.push(bestId);
      i = bestEnd;
      if (vocab.strip[bestId] & STRIP_RIGHT) while (i < text.length && isSpace(text.charCodeAt(i))) i++;
      start = i;
    }
    if (start < text.length) out.push(start === 0 ? text : text.slice(start));
    return out;
  }
}

/** C's isspace(), which llama.cpp uses for lstrip/rstrip. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
