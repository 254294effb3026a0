// Picks the kernels: the native addon when it was built, else the TypeScript reference with a
// one-line notice (an npm dependency's install script may not have been approved to run).

import { referenceKernels } from "./reference.js";
import { loadNativeKernels } from "./native.js";
import type { Kernels } from "./types.js";

export type KernelChoice = "auto" | "native" | "typescript";

let warned = false;

export function selectKernels(choice: KernelChoice = "auto"): Kernels {
  if (choice === "typescript" || process.env.PARALLELCOMP_KERNELS === "typescript") return referenceKernels;
  const native = loadNativeKernels();
  if ("kernels" in native) return native.kernels;
  if (choice === "native") throw new Error(`native kernels unavailable: ${native.error}`);
  if (!warned) {
    warned = true;
    process.stderr.write(`parallelcomp: native kernels unavailable (${native.error}); using the slower TypeScript kernels. Build them with: npm run build:native\n`);
  }
  return referenceKernels;
}

export type { Kernels } from "./types.js";
