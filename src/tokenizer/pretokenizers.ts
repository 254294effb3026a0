// Pre-tokenizers for byte-level BPE: text is cut into words with the regexes of the model's
// tokenizer.json (as llama.cpp lists them per `tokenizer.ggml.pre`), and BPE then runs on
// each word separately. Several regexes run in sequence: each one cuts the pieces the previous
// one left, and both the matches and the text between them stay pieces (the Hugging Face
// "Isolated" split behaviour).
//
// The patterns are written for Oniguruma / Rust regex; JavaScript's `u` flag gives the same
// \p{L}, \p{N}, ... classes, but its \s differs (it has U+FEFF and lacks U+0085), so \s is
// spelled out below as the Unicode White_Space set, which is what the originals use.
// Non-ASCII characters in the patterns are written as \u escapes: editors and tools tend to
// NFC-normalize literal text, which silently changes ranges such as \u1F5F-\u1F7D.
// The case-insensitive contractions `(?i:'s|'t|...)` are spelled `'[sS]|...`, as llama.cpp does.

const WS = String.raw`\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000`;
const s = `[${WS}]`;
const S = `[^${WS}]`;
const CONTRACTIONS = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;

const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^${WS}\p{L}\p{N}]+|${s}+(?!${S})|${s}+`;
// As GPT2 but without the final `\s+`: the variant llama.cpp uses inside multi-regex lists
// (whatever it leaves unmatched still becomes a piece of its own).
const GPT2_NO_TAIL = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^${WS}\p{L}\p{N}]+|${s}+(?!${S})`;
const llama3Like = (digits: string) =>
  String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}${digits}| ?[^${WS}\p{L}\p{N}]+[\r\n]*|${s}*[\r\n]+|${s}+(?!${S})|${s}+`;
const LLAMA3 = llama3Like("{1,3}");
const QWEN2 = llama3Like("");
const QWEN35 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^${WS}\p{L}\p{M}\p{N}]+[\r\n]*|${s}*[\r\n]+|${s}+(?!${S})|${s}+`;
const CJK = String.raw`[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+`;
const DEEPSEEK_LLM = [
  String.raw`[\r\n]`,
  String.raw`${s}?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+`,
  String.raw`${s}?[!-\/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+`,
  String.raw`${s}+$`,
  CJK,
  String.raw`\p{N}+`,
];
const DEEPSEEK_CODER = [String.raw`[\r\n]`, String.raw`${s}?\p{L}+`, String.raw`${s}?\p{P}+`, CJK, String.raw`\p{N}`];
const DEEPSEEK_V3 = [
  String.raw`\p{N}{1,3}`,
  String.raw`[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+`,
  String.raw`[!"#$%&'()*+,\-.\/:;<=>?@\[\\\]^_\x60{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|${s}*[\r\n]+|${s}+(?!${S})|${s}+`,
];
const STARCODER = [String.raw`\p{N}`, GPT2_NO_TAIL];
const FALCON = [String.raw`[\p{P}$+<=>^~|\x60]+`, GPT2_NO_TAIL, "[0-9][0-9][0-9]"];
const DEFAULT = [String.raw`[\p{P}$+<=>^~|]+`, GPT2_NO_TAIL, String.raw`\p{N}+`, "[0-9][0-9][0-9]"];
const BLOOM = String.raw` ?[^(${WS}|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+`;
const GPT4O = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+${CONTRACTIONS}?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*${CONTRACTIONS}?|\p{N}{1,3}| ?[^${WS}\p{L}\p{N}]+[\r\n/]*|${s}*[\r\n]+|${s}+(?!${S})|${s}+`;
const TEKKEN = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^${WS}\p{L}\p{N}]+[\r\n/]*|${s}*[\r\n]+|${s}+(?!${S})|${s}+`;
const SEED_CODER = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^${WS}\p{L}\p{N}\r\n]+|${s}*[\r\n]+|${s}+(?!${S})|${s}+`;
const BAILINGMOE = String.raw`'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^${WS}\p{L}\p{N}]+[\r\n]*|${s}*[\r\n]|${s}+(?!${S})|${s}+`;

export interface PreTokenizerSpec {
  /** Regexes applied in sequence. */
  regexes: string[];
  /** BPE takes a whole word as one token when the vocabulary has it (tokenizer.json's ignore_merges). */
  ignoreMerges: boolean;
  /** Unicode normalization the model's tokenizer.json applies before splitting. */
  normalize?: "NFC";
}

const spec = (regexes: string | string[], extra: Partial<PreTokenizerSpec> = {}): PreTokenizerSpec => ({
  regexes: typeof regexes === "string" ? [regexes] : regexes,
  ignoreMerges: false,
  ...extra,
});

// `tokenizer.ggml.pre` names -> splitting, grouped as llama.cpp groups them.
const TABLE: Array<[string[], PreTokenizerSpec]> = [
  [["default"], spec(DEFAULT)],
  [["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"], spec(LLAMA3, { ignoreMerges: true })],
  [["dbrx", "smaug-bpe", "glm4", "chatglm-bpe"], spec(LLAMA3)],
  [["deepseek-llm"], spec(DEEPSEEK_LLM)],
  [["deepseek-coder"], spec(DEEPSEEK_CODER)],
  [["deepseek-v3", "hunyuan-dense", "joyai-llm"], spec(DEEPSEEK_V3)],
  [["falcon"], spec(FALCON)],
  [["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"], spec(STARCODER)],
  [["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"], spec(GPT2)],
  // Qwen's tokenizer.json normalizes to NFC first; llama.cpp skips that step, which only
  // matters for text that is not already NFC.
  [["qwen2", "deepseek-r1-qwen"], spec(QWEN2, { normalize: "NFC" })],
  [["qwen35"], spec(QWEN35)], // Qwen 3.5 dropped the NFC step (its test vectors keep decomposed accents)
  [["stablelm2", "hunyuan", "solar-open", "megrez", "kormo", "f2llmv2", "grok-2"], spec(QWEN2)],
  [["poro-chat", "bloom", "gpt3-finnish"], spec(BLOOM)],
  [["viking"], spec([BLOOM, String.raw`\p{N}`])],
  [["tekken"], spec(TEKKEN)],
  [["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"], spec(GPT4O)],
  [["seed-coder"], spec(SEED_CODER)],
  [["bailingmoe", "bailingmoe2", "llada-moe"], spec(BAILINGMOE)],
];
const BY_NAME = new Map<string, PreTokenizerSpec>();
for (const [names, sp] of TABLE) for (const name of names) BY_NAME.set(name, sp);

export const SUPPORTED_PRE = [...BY_NAME.keys()];

/** The splitting for a `tokenizer.ggml.pre` name ("" means llama.cpp's "default"), or undefined. */
export function preTokenizerSpec(pre: string): PreTokenizerSpec | undefined {
  return BY_NAME.get(pre === "" ? "default" : pre);
}

export class PreTokenizer {
  private readonly res: RegExp[];
  readonly ignoreMerges: boolean;
  private readonly normalize?: "NFC";

  constructor(sp: PreTokenizerSpec) {
    this.res = sp.regexes.map((r) => new RegExp(r, "gu"));
    this.ignoreMerges = sp.ignoreMerges;
    this.normalize = sp.normalize;
  }

  /** Cuts `text` into words; their concatenation is `text` (after normalization). */
  split(text: string): string[] {
    if (this.normalize) text = text.normalize(this.normalize);
    let pieces = [text];
    for (const re of this.res) {
      const next: string[] = [];
      for (const p of pieces) splitOne(re, p, next);
      pieces = next;
    }
    return pieces;
  }
}

function splitOne(re: RegExp, text: string, out: string[]): void {
  re.lastIndex = 0;
  let last = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      re.lastIndex++; // none of our patterns match empty text, but never loop forever
      continue;
    }
    if (start > last) out.push(text.slice(last, start));
    out.push(m[0]);
    last = end;
  }
  if (last < text.length) out.push(last === 0 ? text : text.slice(last));
}
