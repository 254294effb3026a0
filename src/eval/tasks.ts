// Retrieval tasks, generated with a seed, lengths counted in the model's tokens. Scoring as
// InfiniteBench does: the expected value appears in the answer.
//   passkey, number_string, kv_retrieval  InfiniteBench's R.PK, R.Num and R.KV formats, with
//       its repeated five-sentence filler.
//   needle            RULER-style needle in a haystack: "The NAME is V. Remember it. V is the NAME."
//       (the template family our model is trained on, NAME from NEEDLE_NAMES, V of 5 or 10 digits)
//       in real prose: the licence texts of /usr/share/common-licenses, cut at sentence ends.
//   needle_multikey   the same plus 3 distractor needles (other names, other values) at other
//       depths: RULER's multi-key NIAH.
// Layouts (issue 18): how a user phrases the same sample (see LAYOUTS).

import * as fs from "node:fs";
import * as path from "node:path";
import { rng } from "../util/rng.js";
import type { TextRequest } from "../method/request.js";
import { splitConversation } from "../server/requests.js";

export const TASKS = ["passkey", "number_string", "kv_retrieval", "needle", "needle_multikey"] as const;
export type TaskName = (typeof TASKS)[number];

export const RETRIEVAL_INSTRUCTION = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there.";
export const KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below.";
const FILLER = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again."];

/**
 * How the question is asked. The tasks' own layout is `split`; the others are what people paste:
 *   split      instruction, question and answer prefix apart ("What is the pass key?" + "The pass key is")
 *   published  InfiniteBench's published input as the question, the answer lead inside it and no
 *              answer prefix, under InfiniteBench's own instruction (its src/prompt.py templates):
 *              'Key: "K"\nThe value associated with the specified key is: ', 'What is the pass
 *              key?\n\nThe pass key is'
 *   chat       that whole published prompt as one chat message, split as the server splits it
 *              (instruction and question line into the context, the last paragraph the question)
 *   no_lead    the question alone, no answer prefix: the model writes the lead itself
 *   ruler      RULER's NIAH wording: needle "One of the special magic numbers for KEY is: V.",
 *              its instruction, question and answer prefix (passkey and number_string)
 */
export const LAYOUTS = ["split", "published", "chat", "no_lead", "ruler"] as const;
export type LayoutName = (typeof LAYOUTS)[number];

// InfiniteBench's instructions and answer leads (its open-model templates); RULER's NIAH template.
const IB_INSTRUCTION = {
  passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information.",
  number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.",
};
const IB_LEAD = { passkey: "The pass key is", number_string: "The sequence of digits is" };
const RULER_INSTRUCTION = "Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.";
// Mirrors RULER_ADJECTIVES / RULER_NOUNS in tools/train/tasks.py; keep them equal.
const RULER_ADJECTIVES = ["stormy", "quiet", "bright", "ancient", "frozen", "gentle", "hollow", "rapid", "silent", "golden", "bitter", "clever", "dusty", "eager", "fancy", "giant", "humble", "icy", "jolly", "lively", "mellow", "noisy", "odd", "proud", "rusty", "shiny", "tall", "vivid", "wild", "young"];
const RULER_NOUNS = ["ear", "river", "lamp", "garden", "violin", "pencil", "castle", "mirror", "engine", "forest", "basket", "candle", "harbor", "island", "jacket", "kettle", "ladder", "meadow", "needle", "orchard", "parrot", "quarry", "rocket", "saddle", "tunnel", "umbrella", "valley", "wagon", "yacht", "zebra"];

export interface Sample {
  task: TaskName;
  request: TextRequest;
  answer: string; // expected value
  /** What a right answer writes before the value where the prompt does not end with it ("" when it does). */
  lead: string;
  depth: number; // where the needle sits, 0..1
  needleOffset: number; // character offset of the needle in the context
}

export function isCorrect(s: Sample, answer: string): boolean {
  return answer.includes(s.answer);
}

function digits(random: () => number, n: number): string {
  let s = String(1 + Math.floor(random() * 9));
  while (s.length < n) s += String(Math.floor(random() * 10));
  return s;
}

export function uuid4(random: () => number): string {
  const b = Array.from({ length: 16 }, () => Math.floor(random() * 256));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A sample of about `length` tokens in all (instruction, context, question, answer prefix).
 * countTokens measures text in the model's tokens; the filler is built from units whose token
 * counts are measured once, so a 128K-token sample costs no repeated tokenization.
 */
export function makeSample(task: TaskName, length: number, depth: number, seed: number, countTokens: (s: string) => number, layout: LayoutName = "split"): Sample {
  if (!(depth >= 0 && depth <= 1)) throw new Error(`depth must be in [0, 1], got ${depth}`);
  if (layout === "ruler" && task !== "passkey" && task !== "number_string") {
    throw new Error(`the ruler layout is RULER's needle wording, for passkey and number_string (got ${task})`);
  }
  if (layout !== "split" && (task === "needle" || task === "needle_multikey")) {
    throw new Error(`the ${task} task comes in the split layout only (got ${layout})`);
  }
  const random = rng(seed);
  if (task === "kv_retrieval") return withLayout(kvSample(length, depth, random, countTokens), layout);
  if (task === "needle" || task === "needle_multikey") return needleSample(task, length, depth, random, countTokens);
  const value = task === "passkey" ? digits(random, 5) : digits(random, 10);
  let needle = task === "passkey"
    ? `The pass key is ${value}. Remember it. ${value} is the pass key.`
    : `The sequence of digits is ${value}. Remember it. ${value} is the sequence of digits.`;
  let question = task === "passkey" ? "What is the pass key?" : "What is the sequence number?";
  let answerPrefix = task === "passkey" ? "The pass key is" : "The sequence number is";
  let instruction = RETRIEVAL_INSTRUCTION;
  if (layout === "ruler") {
    const key = `${RULER_ADJECTIVES[Math.floor(random() * RULER_ADJECTIVES.length)]}-${RULER_NOUNS[Math.floor(random() * RULER_NOUNS.length)]}`;
    needle = `One of the special magic numbers for ${key} is: ${value}.`;
    question = `What are all the special magic numbers for ${key} mentioned in the provided text?`;
    answerPrefix = `The special magic number for ${key} mentioned in the provided text is`;
    instruction = RULER_INSTRUCTION;
  }
  const fixed = countTokens(instruction + "\n\n" + "\n\n" + question + "\n" + answerPrefix) + countTokens(needle + " ");
  const budget = length - fixed;
  if (budget < 10) throw new Error(`length ${length} is too short for ${task}`);
  const unitTokens = FILLER.map((s) => countTokens(s + " "));
  const units: string[] = [];
  let used = 0;
  for (let i = 0; ; i = (i + 1) % FILLER.length) {
    if (used + unitTokens[i] > budget) break;
    units.push(FILLER[i]);
    used += unitTokens[i];
  }
  const at = Math.round(depth * units.length);
  const before = units.slice(0, at).join(" ");
  const context = [before, needle, units.slice(at).join(" ")].filter((s) => s.length > 0).join(" ");
  return withLayout({
    task, answer: value, depth, lead: "",
    needleOffset: before.length === 0 ? 0 : before.length + 1,
    request: { instruction, context, question, answerPrefix },
  }, layout === "ruler" ? "split" : layout);
}

/** The split sample `s` asked in `layout` (ruler samples are made by makeSample). */
function withLayout(s: Sample, layout: LayoutName): Sample {
  if (layout === "split" || layout === "ruler") return s;
  const r = s.request;
  const needleTask = s.task === "passkey" || s.task === "number_string";
  if (layout === "no_lead") return { ...s, lead: r.answerPrefix ?? "", request: { ...r, answerPrefix: "" } };
  // InfiniteBench's input: its question line, then (needle tasks) its answer lead after a blank line
  const published = needleTask
    ? { instruction: IB_INSTRUCTION[s.task as "passkey" | "number_string"], question: `${r.question}\n\n${IB_LEAD[s.task as "passkey" | "number_string"]}` }
    : { instruction: r.instruction ?? "", question: `${r.question}\n${r.answerPrefix} ` };
  if (layout === "published") return { ...s, request: { ...r, ...published, answerPrefix: "" } };
  // chat: the published prompt as one user message, split as the server does
  const text = `${published.instruction}\n\n${r.context}\n\n${published.question}`;
  const split = splitConversation([{ role: "user", content: text }]);
  const offset = split.context.indexOf(r.context);
  return { ...s, needleOffset: s.needleOffset + offset, request: { instruction: split.instruction, context: split.context, question: split.question, answerPrefix: "" } };
}

function kvSample(length: number, depth: number, random: () => number, countTokens: (s: string) => number): Sample {
  const pair = () => `"${uuid4(random)}": "${uuid4(random)}"`;
  const question = `Key: "${uuid4(random)}"`;
  const answerPrefix = "The value associated with the specified key is:";
  const fixed = countTokens(KV_INSTRUCTION + "\n\n" + "\n\n" + question + "\n" + answerPrefix) + 2;
  const probe = [pair(), pair(), pair(), pair()];
  const pairTokens = Math.max(1, countTokens(probe.join(", ")) / 4 + countTokens(", ") / 2);
  const n = Math.floor((length - fixed) / pairTokens);
  if (n < 1) throw new Error(`length ${length} is too short for kv_retrieval`);
  const pairs = Array.from({ length: n }, pair);
  const target = Math.min(n - 1, Math.round(depth * (n - 1)));
  const [key, value] = pairs[target].split(": ").map((s) => s.slice(1, -1));
  const context = "{" + pairs.join(", ") + "}";
  return {
    task: "kv_retrieval", answer: value, depth, lead: "",
    needleOffset: context.indexOf(pairs[target]),
    request: { instruction: KV_INSTRUCTION, context, question: `Key: "${key}"`, answerPrefix },
  };
}

// ---------------------------------------------------------------- needle in licence prose

// Mirrors NEEDLE_NAMES in tools/train/tasks.py (the names the bundled model was trained on);
// keep the two lists equal.
export const NEEDLE_NAMES = [
  "pass key", "secret code", "magic number", "access number", "special code",
  "security code", "hidden number", "lucky number", "door code", "pin code",
  "safe combination", "vault code", "entry code", "unlock code", "account number",
  "serial number", "ticket number", "order number", "room number", "locker number",
  "login code", "verification code", "confirmation code", "reference number",
  "tracking number", "member id", "badge number", "launch code", "bonus number",
  "winning number", "key number", "master code", "signal code", "radio code",
  "cipher number", "token number", "gate code", "alarm code", "bank code",
  "card number", "voucher code", "promo code", "coupon code", "lottery number",
  "mystery number", "target number", "control number", "station code", "access key",
  "password", "secret number", "private code", "phone extension", "invoice number",
  "batch number", "flight number", "train number", "parcel number", "case number",
  "license number", "project code", "recovery code", "shipping code", "house number",
];

/** Debian's base-files package installs it everywhere; the texts allow verbatim copies. */
export const LICENSE_DIR = "/usr/share/common-licenses";
const MULTIKEY_DISTRACTORS = 3;

/**
 * The licence texts of `dir` as sentences, files in sorted name order, symlinks (GPL -> GPL-3)
 * and files with the same text skipped, whitespace runs made single spaces. A sentence ends at
 * . ! or ? (maybe closed by a quote or bracket) followed by a capital, digit or opening quote;
 * pieces without a word ("2.", "B.") join the sentence they number (at a file's end, the one before). (Intl.Segmenter cuts the
 * same places but takes seconds on these 230 KB, this takes milliseconds.)
 */
export function licenceSentences(dir: string = LICENSE_DIR): string[] {
  if (dir === LICENSE_DIR && defaultSentences) return defaultSentences;
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    throw new Error(`the needle tasks take their filler from the licence texts in ${dir}, which does not exist (Debian's base-files package installs it)`);
  }
  const seen = new Set<string>();
  const sentences: string[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    if (!fs.lstatSync(file).isFile()) continue;
    const text = fs.readFileSync(file, "utf8").replace(/\s+/g, " ").trim();
    if (text.length === 0 || seen.has(text)) continue;
    seen.add(text);
    const first = sentences.length;
    let pending = "";
    for (const piece of text.split(/(?<=[.!?]["')\]]?) (?=["'(\[]?[A-Z0-9])/)) {
      if (/[A-Za-z]{2}/.test(piece)) {
        sentences.push(pending + piece);
        pending = "";
      } else pending += piece + " ";
    }
    if (pending && sentences.length > first) sentences[sentences.length - 1] += " " + pending.trimEnd(); // "v." "2.0."
    else if (pending) sentences.push(pending.trimEnd());
  }
  if (sentences.length === 0) throw new Error(`the needle tasks take their filler from the licence texts in ${dir}, which holds none`);
  if (dir === LICENSE_DIR) defaultSentences = sentences;
  return sentences;
}
let defaultSentences: string[] | null = null;

// Tokens of each licence sentence (with its following space), measured once per counter: run.ts
// keeps one counter for all samples, so a 128K-token sample tokenizes each sentence at most once.
const sentenceTokens = new WeakMap<(s: string) => number, number[]>();

function tokensOf(countTokens: (s: string) => number, sentences: string[], i: number): number {
  let t = sentenceTokens.get(countTokens);
  if (!t) sentenceTokens.set(countTokens, (t = []));
  return (t[i] ??= countTokens(sentences[i] + " "));
}

function needleText(name: string, value: string): string {
  return `The ${name} is ${value}. Remember it. ${value} is the ${name}.`;
}

/**
 * Filler sentences in corpus order from `start`, cycling, of at most `budget` tokens in all,
 * none over `most` tokens. Where the next sentence no longer fits, later ones that do fit close
 * the gap (at most one more cycle), so the sample ends within a short sentence of its length and
 * never mid-sentence.
 */
function fillSentences(sentences: string[], start: number, budget: number, most: number, countTokens: (s: string) => number): { units: string[]; tokens: number[] } {
  const n = sentences.length;
  const units: string[] = [];
  const tokens: number[] = [];
  let left = budget;
  let firstMiss = -1;
  for (let k = 0; left > 0 && (firstMiss < 0 || k < firstMiss + n); k++) {
    const i = (start + k) % n;
    const t = tokensOf(countTokens, sentences, i);
    if (t <= left && t <= most) {
      units.push(sentences[i]);
      tokens.push(t);
      left -= t;
    } else if (firstMiss < 0) firstMiss = k;
  }
  return { units, tokens };
}

function needleSample(task: "needle" | "needle_multikey", length: number, depth: number, random: () => number, countTokens: (s: string) => number): Sample {
  const sentences = licenceSentences();
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  // As in training's needle variants: the value has the passkey's 5 or number_string's 10 digits.
  const name = pick(NEEDLE_NAMES);
  const nd = random() < 0.5 ? 5 : 10;
  const value = digits(random, nd);
  const start = Math.floor(random() * sentences.length);
  const question = `What is the ${name}?`;
  const answerPrefix = `The ${name} is`;
  const needle = needleText(name, value);

  // Distractors (multi-key): other names, values with training's digit counts (mostly the same
  // as the value's) that neither contain the value nor are contained in it, so that answering
  // a distractor never scores.
  const distractors: string[] = [];
  if (task === "needle_multikey") {
    const pool = NEEDLE_NAMES.filter((n) => n !== name);
    const values = [value];
    for (let j = 0; j < MULTIKEY_DISTRACTORS; j++) {
      const dn = pool.splice(Math.floor(random() * pool.length), 1)[0];
      const dd = random() < 0.8 ? nd : 15 - nd;
      let dv: string;
      do dv = digits(random, dd); while (values.some((v) => v.includes(dv) || dv.includes(v)));
      values.push(dv);
      distractors.push(needleText(dn, dv));
    }
  }

  const fixed = countTokens(RETRIEVAL_INSTRUCTION + "\n\n" + "\n\n" + question + "\n" + answerPrefix)
    + [needle, ...distractors].reduce((a, s) => a + countTokens(s + " "), 0);
  // n sentences leave n + 1 places, one for each needle; in a short sample, sentences of at most
  // 1/n of the room make n of them fit.
  const minUnits = Math.max(1, distractors.length);
  const budget = length - fixed;
  const { units, tokens } = fillSentences(sentences, start, budget, budget / minUnits, countTokens);
  if (units.length < minUnits) {
    throw new Error(`length ${length} is too short for ${task}: instruction, question and needles take ${fixed} tokens, leaving room for ${units.length} filler sentences (at least ${minUnits} needed)`);
  }

  // The needle goes at the sentence boundary nearest to `depth` of the filler's tokens.
  const cum = [0];
  for (const t of tokens) cum.push(cum[cum.length - 1] + t);
  const want = depth * cum[units.length];
  let at = 0;
  for (let b = 1; b <= units.length; b++) if (Math.abs(cum[b] - want) < Math.abs(cum[at] - want)) at = b;
  // Distractor boundaries: distinct indices among the units.length boundaries other than `at`,
  // drawn without looking at `at`, so the needle's offset grows with depth for a given seed.
  const free = Array.from({ length: units.length }, (_, i) => i);
  const placed = new Map<number, string>();
  for (const d of distractors) {
    const i = free.splice(Math.floor(random() * free.length), 1)[0];
    placed.set(i < at ? i : i + 1, d);
  }

  const pieces: string[] = [];
  let needleOffset = 0;
  let chars = 0;
  const put = (s: string) => {
    chars += (pieces.length > 0 ? 1 : 0) + s.length;
    pieces.push(s);
  };
  for (let b = 0; b <= units.length; b++) {
    if (b === at) {
      needleOffset = pieces.length > 0 ? chars + 1 : 0;
      put(needle);
    }
    const d = placed.get(b);
    if (d !== undefined) put(d);
    if (b < units.length) put(units[b]);
  }
  return {
    task, answer: value, depth, needleOffset, lead: "",
    request: { instruction: RETRIEVAL_INSTRUCTION, context: pieces.join(" "), question, answerPrefix },
  };
}
