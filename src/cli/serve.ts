// `parallelcomp serve`: the OpenAI-compatible server (src/server/server.ts) on the command line.

import type { Command } from "commander";
import { DEFAULT_REQUEST_TIMEOUT_SECONDS, startServer } from "../server/server.js";
import { DEFAULT_JOB_LIMITS } from "../server/jobs.js";
import { addBackendOptions, addModelOptions, engineOptions, int, modelFile } from "./options.js";

export function addServe(program: Command) {
  addModelOptions(addBackendOptions(program.command("serve"))
    .description("an OpenAI-compatible server: GET /v1/models, POST /v1/chat/completions, POST /v1/completions"))
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0: any free port)", int(0, 65535), 8080)
    .option("--max-queue <n>", "requests that may wait behind the running one; more get 429", int(0, 100000), 8)
    .option("--max-body-mib <n>", "largest request body in MiB; larger get 413", int(1, 1024), 64)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .option("--api-key <key>", "require 'Authorization: Bearer KEY' on every route but /health (default: $PARALLELCOMP_API_KEY, else none)")
    .option("--allowed-host <name...>", "Host names accepted besides the bound address (and localhost on loopback)")
    .option("--request-timeout <seconds>", "stop a request running longer (504)", int(1, 86400), DEFAULT_REQUEST_TIMEOUT_SECONDS)
    .option("--quadratic-limit <tokens>", "refuse full, ntk and pcw above this many tokens (their cost grows with the square)", int(64), DEFAULT_JOB_LIMITS.quadraticTokens)
    .option("--max-kv-mib <n>", "KV cache one request may hold: (parallel + keep_chunks) windows; more get 400", int(1), DEFAULT_JOB_LIMITS.maxKvMiB)
    .option("--cors <origin...>", "web origins allowed to call the API (\"*\" for any); default none")
    .addHelpText("after", `
A prompt longer than the model's window is answered with ParallelComp: the last paragraph of the
last user message (after its last blank line) is the question, everything before it the context.
A "parallelcomp" object in the request overrides the split and the options:
  { "context", "question", "instruction", "answer_prefix", "method", "preset", "keep_chunks", "chunk_tokens", "parallel" }
("top_k" there is the deprecated old name of "keep_chunks"; the body's own "top_k" is the sampler's.)

Examples:
  parallelcomp serve --port 8080
  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"any","messages":[{"role":"user","content":"<document>\\n\\nWhat is the pass key?"}]}'`)
    .action(async (o) => {
      const options = engineOptions(o); // checked here; the model is loaded in the engine thread
      const s = await startServer({
        model: { file: await modelFile(o.model, o), options }, host: o.host, port: o.port, maxQueue: o.maxQueue, maxBodyBytes: o.maxBodyMib * 1024 * 1024,
        apiKey: o.apiKey ?? (process.env.PARALLELCOMP_API_KEY || undefined), allowedHosts: o.allowedHost, corsOrigins: o.cors,
        limits: { quadraticTokens: o.quadraticLimit, maxKvMiB: o.maxKvMib }, requestTimeoutSeconds: o.requestTimeout,
        log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      });
      if (s.backend.notice) process.stderr.write(`parallelcomp: ${s.backend.notice}\n`);
      process.stderr.write(`parallelcomp: serving at ${s.url}/v1 on ${s.backend.name} (${s.backend.device}), queue ${o.maxQueue}${o.apiKey || process.env.PARALLELCOMP_API_KEY ? ", API key required" : ""}\n`);
      const stop = () => { process.stderr.write("parallelcomp: shutting down\n"); s.close().then(() => process.exit(0)); };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
