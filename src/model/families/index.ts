// The model families our engine runs, one short description each.
import type { Family } from "../family.js";
import { llama } from "./llama.js";
import { qwen2 } from "./qwen2.js";
import { qwen3 } from "./qwen3.js";
import { smollm3 } from "./smollm3.js";
import { granite } from "./granite.js";
import { phi3 } from "./phi3.js";
import { gemma2, gemma3 } from "./gemma.js";

export const FAMILIES: ReadonlyMap<string, Family> = new Map([llama, qwen2, qwen3, smollm3, granite, phi3, gemma2, gemma3].map((f) => [f.arch, f]));
