// The model that ships with the package (trained by tools/train), used when no --model is given.

import * as fs from "node:fs";
import { fileURLToPath } from "node:url";

export const BUNDLED_MODEL = fileURLToPath(new URL("../../../models/parallelcomp-retrieval.gguf", import.meta.url));

export function defaultModelPath(): string {
  if (!fs.existsSync(BUNDLED_MODEL)) throw new Error(`no --model given and the bundled model is missing (${BUNDLED_MODEL})`);
  return BUNDLED_MODEL;
}
