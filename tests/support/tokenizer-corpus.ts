// A deterministic test corpus for comparing tokenizers: English prose (the licence texts Debian
// ships, llama.cpp's documentation), code (llama.cpp's C++ and Python sources, from the pinned
// source bundle), and generated text for what those lack: CJK, other scripts, emoji sequences,
// numbers, whitespace runs, decomposed accents, contractions. The generator is seeded, so the
// same files give the same corpus.

import * as fs from "node:fs";
import * as path from "node:path";

export interface CorpusDoc {
  name: string;
  text: string;
}

const DOC_CHARS = 16 * 1024; // documents are cut at a line end near this size

/** Seeded xorshift32. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function cutDocs(name: string, text: string, out: CorpusDoc[], maxChars = Infinity): void {
  text = text.slice(0, maxChars);
  let part = 0;
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + DOC_CHARS);
    const nl = text.indexOf("\n", end);
    end = nl < 0 || nl - end > 4096 ? end : nl + 1;
    // never cut a surrogate pair
    if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end++;
    out.push({ name: `${name}#${part++}`, text: text.slice(i, end) });
    i = end;
  }
}

function readIf(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const fromRange = (r: () => number, lo: number, hi: number) => String.fromCodePoint(int(r, lo, hi));

const COMMON_HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音";
const SCRIPTS: Array<[number, number]> = [
  [0x0400, 0x044f], // Cyrillic
  [0x0391, 0x03c9], // Greek
  [0x0621, 0x064a], // Arabic
  [0x0905, 0x0939], // Devanagari letters
  [0x0e01, 0x0e2e], // Thai
  [0x05d0, 0x05ea], // Hebrew
  [0x3041, 0x3096], // Hiragana
  [0x30a1, 0x30fa], // Katakana
  [0xac00, 0xd7a3], // Hangul syllables
];
const EMOJI_RANGES: Array<[number, number]> = [[0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f680, 0x1f6ff], [0x1f900, 0x1f9ff], [0x2600, 0x26ff]];
const WS_RUNS = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n   ", "        ", "\u00a0", "\u3000", " \t ", "\n\n\n", "\u2003", "  \n  "];
const WORDS = ["the", "model", "token", "don't", "I'LL", "she's", "we've", "they're", "It'd", "naïve", "café", "Zürich", "façade", "Ångström", "coöperate", "hello", "world", "über", "straße", "résumé"];

function generated(seed: number, chars: number): string {
  const r = rng(seed);
  // rare but valid: other planes, symbols, private use, invisible characters
  const rare = () => pick(r, [" ", ""]) + pick(r, ["\u{1D400}\u{1D401}", "𝒳𝒴", "\u{20000}\u{20001}", "\uE000", "™®©", "→⇒∀∃", "★☆", "♪", "\u00AD", "\u200B"]);
  const parts: string[] = [];
  let n = 0;
  const add = (s: string) => {
    parts.push(s);
    n += s.length;
  };
  while (n < chars) {
    switch (int(r, 0, 10)) {
      case 0: { // Chinese: mostly common characters, some rare ones, CJK punctuation
        let s = "";
        for (let i = int(r, 5, 60); i > 0; i--) s += r() < 0.9 ? pick(r, [...COMMON_HANZI]) : fromRange(r, 0x4e00, 0x9fa5);
        add(s + pick(r, ["。", "，", "、", "！", "？", "：", "", " "]));
        break;
      }
      case 1: { // other scripts, in words
        const [lo, hi] = pick(r, SCRIPTS);
        let s = "";
        for (let w = int(r, 1, 8); w > 0; w--) {
          for (let i = int(r, 1, 9); i > 0; i--) s += fromRange(r, lo, hi);
          s += pick(r, [" ", " ", ", ", ". ", "\n"]);
        }
        add(s);
        break;
      }
      case 2: { // emoji: single, skin tones, ZWJ families, flags, keycaps, variation selectors
        const e = () => fromRange(r, ...pick(r, EMOJI_RANGES));
        const kinds = [
          () => e(),
          () => e() + e() + e(),
          () => "\u{1F44D}" + fromRange(r, 0x1f3fb, 0x1f3ff),
          () => "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}",
          () => fromRange(r, 0x1f1e6, 0x1f1ff) + fromRange(r, 0x1f1e6, 0x1f1ff),
          () => `${int(r, 0, 9)}\uFE0F\u20E3`,
          () => "\u2764\uFE0F",
        ];
        add(pick(r, [" ", "", "\n"]) + pick(r, kinds)() + pick(r, [" ", "", "!", " ok "]));
        break;
      }
      case 3: { // numbers in many shapes
        const kinds = [
          () => String(int(r, 0, 9)),
          () => String(int(r, 0, 99999999)),
          () => `${int(r, 1, 999)},${String(int(r, 0, 999)).padStart(3, "0")},${String(int(r, 0, 999)).padStart(3, "0")}.${int(r, 0, 99)}`,
          () => `${int(r, 1900, 2100)}-${String(int(r, 1, 12)).padStart(2, "0")}-${String(int(r, 1, 28)).padStart(2, "0")}`,
          () => (r() * 1e6).toFixed(int(r, 0, 8)),
          () => `0x${int(r, 0, 0xffffff).toString(16)}`,
          () => `${(r() * 100).toExponential(3)}`,
          () => "1234567890".repeat(int(r, 1, 5)),
          () => "٣٤٥ ४५६ ３４５ Ⅻ ½ ²",
        ];
        add(pick(r, [" ", "", "$", "#", "(", "\n"]) + pick(r, kinds)() + pick(r, [" ", "", "%", ")", ".", "\n"]));
        break;
      }
      case 4: // whitespace runs
        add(pick(r, WS_RUNS).repeat(int(r, 1, 6)) + pick(r, WORDS));
        break;
      case 5: { // decomposed accents (NFD) and combining marks
        const base = pick(r, ["e", "a", "o", "u", "n", "c", "E"]);
        add(" " + base + pick(r, ["\u0301", "\u0300", "\u0308", "\u0303", "\u0327", "\u0302"]) + pick(r, WORDS));
        break;
      }
      case 6: // English-ish words with contractions and punctuation
        add(" " + pick(r, WORDS) + pick(r, ["", ",", ".", "!", "?", "'s", "'t", "'re", "...", " —", ";"]));
        break;
      case 7: // code-ish punctuation runs
        add(pick(r, [" => ", "();", "{\n", "}\n", "[]", " != ", " <= ", "//", "/* ", " */", "::", "->", "\"\"", "''", "#include <vector>\n", "    return x;\n", "\t\tif (a && b) {\n"]));
        break;
      case 8: // mixed-script words
        add(" " + pick(r, WORDS) + fromRange(r, 0x4e00, 0x4fff) + pick(r, ["123", "abc", "ß", "İ", "ǅ", "ﬁ"]));
        break;
      case 9: // long runs (past the merge loop's small-word path): rules, letters, digits, CJK without spaces
        if (r() < 0.3) {
          const unit = pick(r, ["-", "=", "*", "a", "ab", "xyz", "0", "12", "日本", "\u00e9", "\u{1F600}", " ", "\t"]);
          add(pick(r, ["\n", " ", ""]) + unit.repeat(int(r, 20, 400)) + pick(r, ["\n", " ", ""]));
        } else {
          add(rare());
        }
        break;
      default:
        add(rare());
    }
  }
  return parts.join("");
}

/**
 * The corpus: documents of at most ~16 KB, together at least `minBytes` of UTF-8.
 * `llamaCppDir` is llama.cpp's source tree (tests/support/llamacpp.ts).
 */
export function tokenizerCorpus(llamaCppDir: string, minBytes = 1 << 20): CorpusDoc[] {
  const docs: CorpusDoc[] = [];
  const licenses = "/usr/share/common-licenses";
  if (fs.existsSync(licenses)) {
    for (const f of fs.readdirSync(licenses).sort()) {
      const text = readIf(path.join(licenses, f));
      if (text) cutDocs(`licenses/${f}`, text, docs);
    }
  }
  const docsDir = path.join(llamaCppDir, "docs");
  if (fs.existsSync(docsDir)) {
    for (const f of fs.readdirSync(docsDir).filter((x) => x.endsWith(".md")).sort()) {
      const text = readIf(path.join(docsDir, f));
      if (text) cutDocs(`llama.cpp/docs/${f}`, text, docs);
    }
  }
  for (const f of ["src/llama-vocab.cpp", "src/unicode.cpp", "src/llama.cpp", "gguf-py/gguf/vocab.py", "gguf-py/gguf/gguf_writer.py"]) {
    const text = readIf(path.join(llamaCppDir, f));
    if (text) cutDocs(`llama.cpp/${f}`, text, docs);
  }
  let bytes = docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0);
  // Generated text: at least 300 KB, more if the files above came up short.
  let seed = 1;
  for (let made = 0; made < 300 * 1024 || bytes < minBytes; seed++) {
    const text = generated(seed, DOC_CHARS / 2);
    docs.push({ name: `generated#${seed}`, text });
    const b = Buffer.byteLength(text);
    made += b;
    bytes += b;
  }
  return docs;
}
