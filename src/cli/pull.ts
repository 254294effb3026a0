// `parallelcomp pull`: download a model into the cache (src/download/) and print its local path,
// the only line on stdout, so that `$(parallelcomp pull REF)` is a file name.

import type { Command } from "commander";
import { UsageError } from "../errors.js";
import { parseModelRef, REF_SYNTAX } from "../download/model-ref.js";
import { addDownloadOptions, modelFile } from "./options.js";

export function addPull(program: Command) {
  addDownloadOptions(program
    .command("pull")
    .description("download a GGUF model into the cache folder (resuming a partial download) and print its local path")
    .argument("<model>", "hf:OWNER/REPO/FILE.gguf, hf:OWNER/REPO:QUANT or an http(s) URL"))
    .addHelpText("after", `
The cache folder is $PARALLELCOMP_CACHE, else $XDG_CACHE_HOME/parallelcomp, else ~/.cache/parallelcomp.
The hub is $HF_ENDPOINT, else https://huggingface.co; $HF_TOKEN is sent to it for gated or private repos.
A file already in the cache is not downloaded again (no request is made).

Examples:
  parallelcomp pull hf:bartowski/SmolLM2-135M-Instruct-GGUF:Q8_0
  parallelcomp pull hf:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q8_0.gguf
  parallelcomp ask -m hf:bartowski/SmolLM2-135M-Instruct-GGUF:Q8_0 -f book.txt -q "Who wrote the letter?"`)
    .action(async (ref: string, o) => {
      if (parseModelRef(ref).kind === "file") throw new UsageError(`pull wants a remote model, got "${ref}": ${REF_SYNTAX} or an http(s) URL`);
      process.stdout.write(`${await modelFile(ref, o)}\n`);
    });
}
