// `parallelcomp serve`: the OpenAI-compatible server (src/server/server.ts) on the command line.

import type { Command } from "commander";
import { startServer } from "../server/server.js";
import { addBackendOptions, int, openEngine } from "./options.js";

export function addServe(program: Command) {
  addBackendOptions(program.command("serve"))
    .description("an OpenAI-compatible server: GET /v1/models, POST /v1/chat/completions, POST /v1/completions")
    .option("-m, --model <file>", "GGUF model (default: the bundled model)")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0: any free port)", int(0, 65535), 8080)
    .option("--max-queue <n>", "requests that may wait behind the running one; more get 429", int(0, 100000), 8)
    .option("--max-body-mib <n>", "largest request body in MiB; larger get 413", int(1, 1024), 64)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .addHelpText("after", `
A prompt longer than the model's window is answered with ParallelComp: the last paragraph of the
last user message (after its last blank line) is the question, everything before it the context.
A "parallelcomp" object in the request overrides the split and the options:
  { "context", "question", "instruction", "answer_prefix", "method", "preset", "top_k", "chunk_tokens", "parallel" }

Examples:
  parallelcomp serve --port 8080
  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"any","messages":[{"role":"user","content":"<document>\\n\\nWhat is the pass key?"}]}'`)
    .action(async (o) => {
      const model = openEngine(o);
      const s = await startServer({
        model, host: o.host, port: o.port, maxQueue: o.maxQueue, maxBodyBytes: o.maxBodyMib * 1024 * 1024,
        log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      });
      process.stderr.write(`parallelcomp: serving ${model.file} at ${s.url}/v1 (window ${model.config.nCtxTrain} tokens, queue ${o.maxQueue})\n`);
      const stop = () => { process.stderr.write("parallelcomp: shutting down\n"); s.close().then(() => { model.close(); process.exit(0); }); };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
