// InfiniteBench-style retrieval tasks, generated with a seed, lengths counted in the model's tokens.
// Formats follow InfiniteBench (R.PK passkey, R.Num number_string, R.KV kv_retrieval); scoring
// as InfiniteBench does: the expected value appears in the answer.

import { rng } from "../generate/sampler.js";
import type { TextRequest } from "../method/request.js";

export const TASKS = ["passkey", "number_string", "kv_retrieval"] as const;
export type TaskName = (typeof TASKS)[number];

export const RETRIEVAL_INSTRUCTION = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there.";
export const KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below.";
const FILLER = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again."];

export interface Sample {
  task: TaskName;
  request: TextRequest;
  answer: string; // expected value
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
export function makeSample(task: TaskName, length: number, depth: number, seed: number, countTokens: (s: string) => number): Sample {
  if (!(depth >= 0 && depth <= 1)) throw new Error(`depth must be in [0, 1], got ${depth}`);
  const random = rng(seed);
  if (task === "kv_retrieval") return kvSample(length, depth, random, countTokens);
  const value = task === "passkey" ? digits(random, 5) : digits(random, 10);
  const needle = task === "passkey"
    ? `The pass key is ${value}. Remember it. ${value} is the pass key.`
    : `The sequence of digits is ${value}. Remember it. ${value} is the sequence of digits.`;
  const question = task === "passkey" ? "What is the pass key?" : "What is the sequence number?";
  const answerPrefix = task === "passkey" ? "The pass key is" : "The sequence number is";
  const fixed = countTokens(RETRIEVAL_INSTRUCTION + "\n\n" + "\n\n" + question + "\n" + answerPrefix) + countTokens(needle + " ");
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
  return {
    task, answer: value, depth,
    needleOffset: before.length === 0 ? 0 : before.length + 1,
    request: { instruction: RETRIEVAL_INSTRUCTION, context, question, answerPrefix },
  };
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
    task: "kv_retrieval", answer: value, depth,
    needleOffset: context.indexOf(pairs[target]),
    request: { instruction: KV_INSTRUCTION, context, question: `Key: "${key}"`, answerPrefix },
  };
}
