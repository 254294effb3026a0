// `parallelcomp serve`: an OpenAI-compatible HTTP server (GET /v1/models, POST
// /v1/chat/completions, POST /v1/completions, `stream: true` as server-sent events). node:http
// is enough for three routes; what needs our control is the queue: the engine runs one request
// at a time, a bounded number wait (429 past it), and a client that goes away stops its work
// at the next batch of chunks or token.

import * as http from "node:http";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import type { Engine } from "../engine/engine.js";
import { ask, type AskResult } from "../api.js";
import { renderChat } from "../tokenizer/chat.js";
import { drainAsync, generateSteps } from "../generate/generate.js";
import { HttpError, parseBody, parseJob, splitConversation, type Job } from "./requests.js";

export interface ServerOptions {
  model: Engine;
  host?: string; // default 127.0.0.1
  port?: number; // default 8080; 0 = any free port
  /** Requests waiting behind the running one; more get 429. Default 8. */
  maxQueue?: number;
  /** Largest request body; more get 413. Default 64 MiB (the CLI's context limit). */
  maxBodyBytes?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  server: http.Server;
  /** Requests running or waiting now. */
  load(): { running: number; waiting: number };
  close(): Promise<void>;
}

class Stopped extends Error {} // a stop string was produced: end the run, keep the text

/** One-at-a-time execution with a bounded wait list. */
class Queue {
  private running = false;
  private waiting: Array<() => void> = [];
  constructor(readonly max: number) {}

  get load() { return { running: this.running ? 1 : 0, waiting: this.waiting.length }; }

  /** Runs `work` when its turn comes; false (and nothing run) if the wait list is full. */
  offer(work: () => Promise<void>, signal: AbortSignal): boolean {
    if (this.running && this.waiting.length >= this.max) return false;
    const start = () => {
      this.running = true;
      work().finally(() => {
        this.running = false;
        this.waiting.shift()?.();
      });
    };
    if (!this.running) { start(); return true; }
    const entry = start; // a job whose client left is removed below; run() also checks
    this.waiting.push(entry);
    signal.addEventListener("abort", () => {
      const i = this.waiting.indexOf(entry);
      if (i >= 0) this.waiting.splice(i, 1); // a client that left frees its place at once
    }, { once: true });
    return true;
  }
}

/** Holds back text that might be the start of a stop string; reports the cut when one appears. */
export class StopScanner {
  private held = "";
  constructor(private readonly stops: string[]) {}

  /** Text safe to emit now, and whether a stop string ended the answer. */
  push(text: string): { out: string; stopped: boolean } {
    this.held += text;
    if (this.stops.length === 0) { const out = this.held; this.held = ""; return { out, stopped: false }; }
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) { const out = this.held.slice(0, cut); this.held = ""; return { out, stopped: true }; }
    const keep = Math.max(0, ...this.stops.map((s) => s.length - 1));
    const out = this.held.slice(0, Math.max(0, this.held.length - keep));
    this.held = this.held.slice(out.length);
    return { out, stopped: false };
  }

  flush(): string { const out = this.held; this.held = ""; return out; }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, e: HttpError) {
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: null } });
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) return reject(new HttpError(413, `the request body is larger than ${limit} bytes`, "invalid_request_error"));
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        reject(new HttpError(413, `the request body is larger than ${limit} bytes`, "invalid_request_error"));
        req.destroy();
        return;
      }
      parts.push(d);
    });
    req.on("end", () => {
      try {
        resolve(new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(parts)));
      } catch {
        reject(new HttpError(400, "the request body is not valid UTF-8"));
      }
    });
    req.on("error", reject);
  });
}

export function startServer(o: ServerOptions): Promise<RunningServer> {
  const model = o.model;
  const modelId = path.basename(model.file).replace(/\.gguf$/i, "");
  const queue = new Queue(o.maxQueue ?? 8);
  const maxBody = o.maxBodyBytes ?? 64 * 1024 * 1024;
  const created = Math.floor(Date.now() / 1000);
  const log = o.log ?? (() => {});

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const route = url.pathname.replace(/\/+$/, "");
    try {
      if (route === "/v1/models" || route === "/v1/models/" + modelId) {
        if (req.method !== "GET") throw new HttpError(405, `${req.method} is not allowed on ${route}: use GET`);
        const card = { id: modelId, object: "model", created, owned_by: "parallelcomp", context_length: model.config.nCtxTrain };
        return sendJson(res, 200, route === "/v1/models" ? { object: "list", data: [card] } : card);
      }
      if (route === "/health") return sendJson(res, 200, { status: "ok", ...queue.load });
      const kind = route === "/v1/chat/completions" ? "chat" : route === "/v1/completions" ? "completion" : null;
      if (!kind) throw new HttpError(404, `no route ${route} (routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions)`, "not_found_error");
      if (req.method !== "POST") throw new HttpError(405, `${req.method} is not allowed on ${route}: use POST`);
      const job = parseJob(kind, parseBody(await readBody(req, maxBody)));
      const abort = new AbortController();
      res.on("close", () => { if (!res.writableFinished) abort.abort(new Error("the client disconnected")); });
      const accepted = queue.offer(() => run(job, res, abort.signal), abort.signal);
      if (!accepted) throw new HttpError(429, `the server is busy: ${queue.max} requests are already waiting; retry later`, "rate_limit_error");
    } catch (e) {
      if (e instanceof HttpError) return sendError(res, e);
      log(`internal error: ${(e as Error).stack}`);
      sendError(res, new HttpError(500, (e as Error).message, "server_error"));
    }
  });

  async function run(job: Job, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const id = (job.kind === "chat" ? "chatcmpl-" : "cmpl-") + randomUUID();
    const t0 = performance.now();
    const stopAt = new StopScanner(job.stop);
    const local = new AbortController(); // a stop string ends the run early
    const both = AbortSignal.any([signal, local.signal]);
    let text = "";
    let started = false;
    const chunk = (piece: { content?: string; role?: string } | null, finish: string | null) => ({
      id, object: job.kind === "chat" ? "chat.completion.chunk" : "text_completion", created: Math.floor(Date.now() / 1000), model: modelId,
      choices: [job.kind === "chat"
        ? { index: 0, delta: piece ?? {}, finish_reason: finish, logprobs: null }
        : { index: 0, text: piece?.content ?? "", finish_reason: finish, logprobs: null }],
    });
    const emit = (s: string) => {
      if (!s) return;
      text += s;
      if (!job.stream) return;
      if (!started) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
        started = true;
        if (job.kind === "chat") res.write(`data: ${JSON.stringify(chunk({ role: "assistant", content: "" }, null))}\n\n`);
      }
      res.write(`data: ${JSON.stringify(chunk({ content: s }, null))}\n\n`);
    };
    const onText = (s: string) => {
      const r = stopAt.push(s);
      emit(r.out);
      if (r.stopped) local.abort(new Stopped());
    };

    let promptTokens = 0;
    let completionTokens = 0;
    let finish: "stop" | "length" = "stop";
    let details: Partial<AskResult> = {};
    try {
      const direct = directPrompt(job);
      if (direct !== null) {
        const tok = model.tokenizer;
        const ids = tok.encode(direct, { addBos: tok.addBos, parseSpecial: job.kind === "chat" });
        promptTokens = ids.length;
        const decoder = tok.streamDecoder({ skipSpecial: true });
        const g = await drainAsync(generateSteps(model, ids, {
          ...job.sampling, maxTokens: job.maxTokens, stopTokens: tok.eogTokens,
          onToken: (t) => onText(decoder.push(t)),
        }), both).catch(stoppedOk);
        if (g) { onText(decoder.flush()); completionTokens = g.tokens.length; finish = g.stoppedBy === "length" ? "length" : "stop"; }
        else completionTokens = countTokens(text); // ended by a stop string
      } else {
        const split = { ...splitConversation(job.messages), ...definedOnly(job.override) };
        const r = await ask(model, { context: split.context ?? "", question: split.question ?? "", instruction: split.instruction, answerPrefix: split.answerPrefix }, {
          method: job.override.method, preset: job.override.preset, topK: job.override.topK, chunkTokens: job.override.chunkTokens,
          maxParallelChunks: job.override.maxParallelChunks, maxTokens: job.maxTokens, sampling: job.sampling, signal: both, onText,
          onTokenized: (n) => { promptTokens = n; },
        }).catch(stoppedOk);
        if (r) {
          promptTokens = r.promptTokens; completionTokens = r.tokens.length; finish = r.stoppedBy;
          details = { method: r.method, nChunks: r.nChunks, keptChunks: r.keptChunks, timings: r.timings };
        } else {
          completionTokens = countTokens(text); // ended by a stop string
        }
      }
    } catch (e) {
      if (signal.aborted) { log(`${id}: cancelled (${(signal.reason as Error)?.message ?? "aborted"})`); return; }
      const err = userError(e) ?? new HttpError(500, (e as Error).message, "server_error");
      if (err.status >= 500) log(`${id}: ${(e as Error).stack}`);
      if (!started) return sendError(res, err);
      res.write(`data: ${JSON.stringify({ error: { message: err.message, type: err.type } })}\n\n`);
      res.end();
      return;
    }
    emit(stopAt.flush());
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    log(`${id}: ${job.kind} ${promptTokens}+${completionTokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (job.stream) {
      if (!started) { res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" }); started = true; }
      res.write(`data: ${JSON.stringify(chunk(null, finish))}\n\n`);
      if (job.includeUsage) res.write(`data: ${JSON.stringify({ ...chunk(null, null), choices: [], usage })}\n\n`);
      res.end("data: [DONE]\n\n");
      return;
    }
    const choice = job.kind === "chat"
      ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish, logprobs: null }
      : { index: 0, text, finish_reason: finish, logprobs: null };
    sendJson(res, 200, {
      id, object: job.kind === "chat" ? "chat.completion" : "text_completion", created: Math.floor(Date.now() / 1000), model: modelId,
      choices: [choice], usage, parallelcomp: details,
    });
  }

  function countTokens(s: string): number {
    return model.tokenizer.encode(s, { addBos: false, parseSpecial: false }).length;
  }

  /**
   * The prompt to generate from directly, when it fits the window with the answer and no
   * override asks for ParallelComp: a chat rendered with the model's template (models without one
   * take the split, which is the layout such a model was trained on), or a completion's prompt.
   */
  function directPrompt(job: Job): string | null {
    if (job.forceSplit) return null;
    let text: string;
    if (job.kind === "completion") text = job.prompt!;
    else if (model.gguf.has("tokenizer.chat_template")) text = renderChat(model.gguf, job.messages, { addGenerationPrompt: true });
    else return null;
    const n = model.tokenizer.encode(text, { addBos: model.tokenizer.addBos, parseSpecial: job.kind === "chat" }).length;
    return n + job.maxTokens <= model.config.nCtxTrain ? text : null;
  }

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 8080, o.host ?? "127.0.0.1", () => {
      const a = server.address() as { address: string; port: number };
      const host = a.address.includes(":") ? `[${a.address}]` : a.address;
      resolve({
        url: `http://${host}:${a.port}`,
        server,
        load: () => queue.load,
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

function stoppedOk(e: unknown): null {
  if (e instanceof Stopped) return null;
  throw e;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Errors the request caused (an empty question, a question longer than the window): 400. */
function userError(e: unknown): HttpError | null {
  const m = (e as Error).message ?? "";
  if (/is empty|leave .* tokens|must be|unknown (method|preset)|invalid sampling|too short|does not fit/.test(m)) return new HttpError(400, m);
  return null;
}
