// `parallelcomp serve`: an OpenAI-compatible HTTP server (GET /v1/models, POST
// /v1/chat/completions, POST /v1/completions, `stream: true` as server-sent events). node:http
// is enough for three routes; what needs our control is the queue: the engine runs one request
// at a time, a bounded number wait (429 past it), and a client that goes away stops its work
// at the next batch of chunks or token.

import * as http from "node:http";
import * as path from "node:path";
import { randomUUID, timingSafeEqual } from "node:crypto";
import { Worker } from "node:worker_threads";
import type { Engine } from "../engine/engine.js";
import type { EngineOptions } from "../backends/index.js";
import { BackendError, UsageError, errorOfKind } from "../errors.js";
import { HttpError, parseBody, parseJob, type Job } from "./requests.js";
import { collectGarbage } from "./gc.js";
import { DEFAULT_JOB_LIMITS, runJob, type JobLimits, type JobOutcome } from "./jobs.js";
import type { FromWorker, ToWorker, WorkerData } from "./worker.js";

export { StopScanner } from "./jobs.js";

/** A model for the server to load in its engine thread. */
export interface ModelSource {
  file?: string; // default: the bundled model
  options?: EngineOptions;
}

/** A request running longer is stopped with a 504 (a stream gets an error event). */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 600;

export interface ServerOptions {
  /** A loaded engine runs in this thread, between event-loop turns; a `ModelSource` is loaded and run in a worker thread. */
  model: Engine | ModelSource;
  host?: string; // default 127.0.0.1
  port?: number; // default 8080; 0 = any free port
  /** Requests waiting behind the running one; more get 429. Default 8. */
  maxQueue?: number;
  /** Largest request body; more get 413. Default 64 MiB (the CLI's context limit). */
  maxBodyBytes?: number;
  /** Required as `Authorization: Bearer KEY` on every route but /health. Default: none. */
  apiKey?: string;
  /** Host header names accepted besides the bound address (and localhost when bound to loopback). */
  allowedHosts?: string[];
  /** Origins a browser page may call from ("*" for any); default none: requests with an Origin get 403. */
  corsOrigins?: string[];
  /** Limits on what one request may ask of the engine (jobs.ts `DEFAULT_JOB_LIMITS`). */
  limits?: Partial<JobLimits>;
  /** Default DEFAULT_REQUEST_TIMEOUT_SECONDS. */
  requestTimeoutSeconds?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  server: http.Server;
  backend: { name: string; device: string; notice?: string };
  /** Requests running or waiting now. */
  load(): { running: number; waiting: number };
  close(): Promise<void>;
}

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

function sendJson(res: http.ServerResponse, status: number, body: unknown) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, e: HttpError) {
  if (e.status === 413 && !res.headersSent) {
    res.setHeader("connection", "close");
    res.once("finish", () => res.socket?.destroy());
  }
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: null } });
}

/**
 * The body as text, up to `limit` bytes (413 past it). Its listeners go once it is read: a
 * kept-alive connection keeps its last request object, and through them the body, alive.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let parts: Buffer[] = [];
    let size = 0;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) return reject(new HttpError(413, `the request body is larger than ${limit} bytes`, "invalid_request_error"));
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    const onData = (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        // Read no more of it, but let the client finish sending so it can read the 413; the
        // connection is closed once the answer is out (sendError's "connection: close").
        done();
        req.resume();
        reject(new HttpError(413, `the request body is larger than ${limit} bytes`, "invalid_request_error"));
        return;
      }
      parts.push(d);
    };
    const onEnd = () => {
      done();
      const body = Buffer.concat(parts);
      parts = [];
      try {
        resolve(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch {
        reject(new HttpError(400, "the request body is not valid UTF-8"));
      }
    };
    const onError = (e: Error) => { done(); reject(e); };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/**
 * Who may call: a web page the user opens must not reach a local API (no Origin allowed unless
 * --cors; a DNS-rebinding name fails the Host check; a form POST without a preflight is not
 * application/json), and with an API key every route but /health needs it.
 */
export function accessCheck(o: Pick<ServerOptions, "apiKey" | "allowedHosts" | "corsOrigins">, bound: string) {
  const loopback = /^(127\.|::1$|localhost$)/.test(bound);
  const wildcard = bound === "0.0.0.0" || bound === "::";
  const hosts = new Set([bound, ...(loopback ? ["localhost", "127.0.0.1", "::1"] : []), ...(o.allowedHosts ?? [])].map((h) => h.toLowerCase()));
  const cors = new Set(o.corsOrigins ?? []);
  const key = o.apiKey ? Buffer.from(o.apiKey) : null;
  return {
    /** Headers for a response to this request (CORS, when its Origin is allowed). */
    corsHeaders(req: http.IncomingMessage): Record<string, string> {
      const origin = req.headers.origin;
      if (!origin || !(cors.has("*") || cors.has(origin))) return {};
      return { "access-control-allow-origin": cors.has("*") ? "*" : origin, vary: "Origin" };
    },
    /** Throws the HttpError this request gets, if any (before its body is read). A CORS preflight is checked for Host and Origin only. */
    check(req: Pick<http.IncomingMessage, "method" | "headers">, route: string): void {
      const preflight = req.method === "OPTIONS";
      const hostHeader = (req.headers.host ?? "").toLowerCase();
      const hostname = hostHeader.startsWith("[") ? hostHeader.slice(1, hostHeader.indexOf("]")) : hostHeader.replace(/:\d+$/, "");
      if (!(wildcard && !o.allowedHosts?.length) && !hosts.has(hostname)) {
        throw new HttpError(403, `Host "${hostHeader}" is not allowed (this server answers to ${[...hosts].join(", ")}; add names with --allowed-host)`, "permission_error");
      }
      const origin = req.headers.origin;
      if (origin && !(cors.has("*") || cors.has(origin))) {
        throw new HttpError(403, `requests from the web origin ${origin} are not allowed (start the server with --cors ${origin} to allow them)`, "permission_error");
      }
      if (preflight) return;
      if (key && route !== "/health") {
        const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
        const given = Buffer.from(m ? m[1].trim() : "");
        if (given.length !== key.length || !timingSafeEqual(given, key)) throw new HttpError(401, "a valid API key is needed: send it as 'Authorization: Bearer KEY'", "invalid_request_error");
      }
    },
    /** A POST body must say it is JSON: a page's form or text/plain POST is sent without a preflight. */
    checkJson(req: Pick<http.IncomingMessage, "headers">): void {
      const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
      if (type !== "application/json") throw new HttpError(415, `POST bodies must be sent as 'Content-Type: application/json', got ${JSON.stringify(type || "none")}`);
    },
  };
}

/** What the request handlers of one server share. */
interface Served {
  runner: Runner;
  modelId: string;
  queue: Queue;
  access: ReturnType<typeof accessCheck>;
  maxBody: number;
  timeoutMs: number;
  created: number; // the model card's creation time (the server's start)
  log: (line: string) => void;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  const limits: JobLimits = { ...DEFAULT_JOB_LIMITS, ...o.limits };
  const runner = "forward" in o.model ? inThread(o.model, limits) : await inWorker(o.model, limits, log);
  const served: Served = {
    runner,
    modelId: path.basename(runner.file).replace(/\.gguf$/i, ""),
    queue: new Queue(o.maxQueue ?? 8),
    access: accessCheck(o, o.host ?? "127.0.0.1"),
    maxBody: o.maxBodyBytes ?? 64 * 1024 * 1024,
    timeoutMs: (o.requestTimeoutSeconds ?? DEFAULT_REQUEST_TIMEOUT_SECONDS) * 1000,
    created: Math.floor(Date.now() / 1000),
    log,
  };
  const server = http.createServer((req, res) => handle(served, req, res));
  // When the client's side of the connection ends, its request is cancelled (node's default). A
  // client that aborts and one that only half-closes (shutdown(SHUT_WR)) look the same until the
  // answer is written, and a run can take minutes: freeing the engine for the next request wins
  // over the rare half-closing client (HTTP clients keep their side open while they wait).
  return listen(server, o, served);
}

/** Routes one request: access checks, a CORS preflight, the model list, /health, or a completion to queue. */
async function handle(s: Served, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  const route = url.pathname.replace(/\/+$/, "");
  for (const [k, v] of Object.entries(s.access.corsHeaders(req))) res.setHeader(k, v);
  try {
    s.access.check(req, route);
    if (req.method === "OPTIONS") return preflight(req, res);
    if (route === "/v1/models" || route === "/v1/models/" + s.modelId) return listModels(s, req, res, route);
    if (route === "/health") return sendJson(res, 200, { status: "ok", ...s.queue.load });
    enqueue(s, await readJob(s, req, route), res);
  } catch (e) {
    const err = httpError(e);
    if (err.status === 500) s.log(`internal error: ${(e as Error).stack}`);
    sendError(res, err);
  }
}

/**
 * The answer to a failed request: the error's type decides the status (errors.ts), never its text.
 * A backend's message says what failed; any other error is a bug of ours, told in the log only.
 */
function httpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof UsageError) return new HttpError(400, e.message);
  if (e instanceof BackendError) return new HttpError(500, e.message, "server_error");
  return new HttpError(500, "internal error (see the server's log)", "server_error");
}

function preflight(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!req.headers.origin) throw new HttpError(405, "OPTIONS is answered only as a CORS preflight (with an Origin header)");
  res.writeHead(204, { "access-control-allow-methods": "GET, POST", "access-control-allow-headers": "authorization, content-type", "access-control-max-age": "600" });
  res.end();
}

function listModels(s: Served, req: http.IncomingMessage, res: http.ServerResponse, route: string): void {
  if (req.method !== "GET") throw new HttpError(405, `${req.method} is not allowed on ${route}: use GET`);
  const card = { id: s.modelId, object: "model", created: s.created, owned_by: "parallelcomp", context_length: s.runner.nCtxTrain };
  sendJson(res, 200, route === "/v1/models" ? { object: "list", data: [card] } : card);
}

/** A completion route's request, checked and parsed into the job it asks for. */
async function readJob(s: Served, req: http.IncomingMessage, route: string): Promise<Job> {
  const kind = route === "/v1/chat/completions" ? "chat" : route === "/v1/completions" ? "completion" : null;
  if (!kind) throw new HttpError(404, `no route ${route} (routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions)`, "not_found_error");
  if (req.method !== "POST") throw new HttpError(405, `${req.method} is not allowed on ${route}: use POST`);
  if (Number(req.headers["content-length"] ?? 0) > s.maxBody) throw new HttpError(413, `the request body is larger than ${s.maxBody} bytes`);
  s.access.checkJson(req);
  return parseJob(kind, parseBody(await readBody(req, s.maxBody)));
}

/** Queues the job behind the running one (429 when the wait list is full); a client that leaves cancels it. */
function enqueue(s: Served, job: Job, res: http.ServerResponse): void {
  const abort = cancelOnClose(res);
  const accepted = s.queue.offer(() => answer(s, job, res, abort).finally(() => s.runner.afterRequest()), abort.signal);
  if (!accepted) throw new HttpError(429, `the server is busy: ${s.queue.max} requests are already waiting; retry later`, "rate_limit_error");
}

/** Runs the job under the request timeout and sends its answer, or its error. */
async function answer(s: Served, job: Job, res: http.ServerResponse, abort: AbortController): Promise<void> {
  const signal = abort.signal;
  if (signal.aborted) return;
  const id = (job.kind === "chat" ? "chatcmpl-" : "cmpl-") + randomUUID();
  const t0 = performance.now();
  const timer = setTimeout(() => abort.abort(new TimedOut(`the request ran past the server's limit of ${s.timeoutMs / 1000} s (--request-timeout)`)), s.timeoutMs);
  const reply = replyWriter(job, id, s.modelId, res);
  let out: JobOutcome;
  try {
    out = await s.runner.run(job, reply.onText, signal);
  } catch (e) {
    const timedOut = signal.reason instanceof TimedOut;
    if (signal.aborted && !timedOut) { s.log(`${id}: cancelled (${(signal.reason as Error)?.message ?? "aborted"})`); return; }
    const err = timedOut ? new HttpError(504, (signal.reason as Error).message, "timeout_error") : httpError(e);
    s.log(`${id}: ${err.status} ${err.status === 500 ? (e as Error).stack ?? (e as Error).message : err.message}`);
    return reply.fail(err);
  } finally {
    clearTimeout(timer);
  }
  s.log(`${id}: ${job.kind} ${out.promptTokens}+${out.completionTokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  reply.finish(out);
}

/**
 * The answer in the client's shape: server-sent events as its text comes (`stream: true`), else
 * one JSON body at the end; chat completions and text completions each in OpenAI's format.
 */
function replyWriter(job: Job, id: string, modelId: string, res: http.ServerResponse) {
  let text = "";
  let started = false;
  const chunk = (piece: { content?: string; role?: string } | null, finish: string | null) => ({
    id, object: job.kind === "chat" ? "chat.completion.chunk" : "text_completion", created: Math.floor(Date.now() / 1000), model: modelId,
    choices: [job.kind === "chat"
      ? { index: 0, delta: piece ?? {}, finish_reason: finish, logprobs: null }
      : { index: 0, text: piece?.content ?? "", finish_reason: finish, logprobs: null }],
  });
  const startStream = () => {
    if (started) return;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    started = true;
    if (job.kind === "chat") res.write(`data: ${JSON.stringify(chunk({ role: "assistant", content: "" }, null))}\n\n`);
  };
  return {
    onText(s: string): void {
      if (!s) return;
      text += s;
      if (!job.stream) return;
      startStream();
      res.write(`data: ${JSON.stringify(chunk({ content: s }, null))}\n\n`);
    },
    /** The error as a status, or as an error event once a stream has begun. */
    fail(err: HttpError): void {
      if (!started) return sendError(res, err);
      res.write(`data: ${JSON.stringify({ error: { message: err.message, type: err.type } })}\n\n`);
      res.end();
    },
    finish(out: JobOutcome): void {
      const usage = { prompt_tokens: out.promptTokens, completion_tokens: out.completionTokens, total_tokens: out.promptTokens + out.completionTokens };
      if (job.stream) {
        startStream();
        res.write(`data: ${JSON.stringify(chunk(null, out.finish))}\n\n`);
        if (job.includeUsage) res.write(`data: ${JSON.stringify({ ...chunk(null, null), choices: [], usage })}\n\n`);
        res.end("data: [DONE]\n\n");
        return;
      }
      const choice = job.kind === "chat"
        ? { index: 0, message: { role: "assistant", content: text }, finish_reason: out.finish, logprobs: null }
        : { index: 0, text, finish_reason: out.finish, logprobs: null };
      sendJson(res, 200, {
        id, object: job.kind === "chat" ? "chat.completion" : "text_completion", created: Math.floor(Date.now() / 1000), model: modelId,
        choices: [choice], usage, parallelcomp: out.details,
      });
    },
  };
}

/** Starts listening; the running server's `close` ends its connections, then its engine. */
function listen(server: http.Server, o: ServerOptions, s: Served): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    server.once("error", (e) => { void s.runner.close(); reject(e); });
    server.listen(o.port ?? 8080, o.host ?? "127.0.0.1", () => {
      const a = server.address() as { address: string; port: number };
      const host = a.address.includes(":") ? `[${a.address}]` : a.address;
      resolve({
        url: `http://${host}:${a.port}`,
        server,
        backend: s.runner.backend,
        load: () => s.queue.load,
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => { void s.runner.close().then(() => r()); }); }),
      });
    });
  });
}

/**
 * An abort for when the client goes away. Made apart from the request's other closures: a
 * listener shares its scope's variables, and this one lives as long as a kept-alive connection,
 * which would keep a large request's text alive with it.
 */
function cancelOnClose(res: http.ServerResponse): AbortController {
  const abort = new AbortController();
  res.on("close", () => { if (!res.writableFinished) abort.abort(new Error("the client disconnected")); });
  return abort;
}

class TimedOut extends Error {}

/** How long a cancelled run may take to reach its next step before its thread is stopped. */
const CANCEL_GRACE_MS = 10_000;

/** Where requests run: `run` streams the answer's text and resolves with the counts. */
interface Runner {
  file: string;
  nCtxTrain: number;
  backend: { name: string; device: string; notice?: string };
  run(job: Job, onText: (s: string) => void, signal: AbortSignal): Promise<JobOutcome>;
  /** Called once a request's answer is sent: memory it left behind is given back (the next run waits for it). */
  afterRequest(): void;
  close(): Promise<void>;
}

/** A loaded engine, run in this thread between event-loop turns (the library's way; tests). */
function inThread(model: Engine, limits: JobLimits): Runner {
  return {
    file: model.file, nCtxTrain: model.config.nCtxTrain, backend: model.backend,
    run: (job, onText, signal) => runJob(model, job, limits, { onText }, signal),
    afterRequest: () => void setImmediate(collectGarbage),
    close: async () => {},
  };
}

/**
 * The engine in a worker thread, started again if it dies (a message says why); a cancel reaches
 * it between the steps of a run, whatever this thread is doing.
 */
async function inWorker(src: ModelSource, limits: JobLimits, log: (line: string) => void): Promise<Runner> {
  const pending = new Map<string, { onText: (s: string) => void; resolve: (o: JobOutcome) => void; reject: (e: Error) => void; signal: AbortSignal }>();
  let worker!: Worker;
  let closing = false;
  const recycling = new Set<Worker>(); // replaced on purpose: their exit is not a failure
  const start = () => new Promise<Extract<FromWorker, { type: "ready" }>>((resolve, reject) => {
    const data: WorkerData = { file: src.file, options: src.options ?? {}, limits };
    const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: data });
    worker = w;
    let ready = false;
    w.on("message", (m: FromWorker) => {
      if (m.type === "ready") { ready = true; return resolve(m); }
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === "text") return p.onText(m.s);
      pending.delete(m.id);
      if (m.type === "done") return p.resolve(m.outcome);
      if (m.cancelled && p.signal.aborted) return p.reject(p.signal.reason instanceof Error ? p.signal.reason : new Error("cancelled"));
      p.reject(errorOfKind(m.kind, m.message));
    });
    w.on("error", (e) => {
      if (!ready) return reject(e);
      log(`engine thread failed: ${e.message}`);
    });
    w.on("exit", (code) => {
      if (recycling.delete(w)) return;
      if (!ready) return reject(new Error(`the engine thread exited (${code}) while loading the model`));
      for (const p of pending.values()) p.reject(new Error(`the engine stopped (exit code ${code}); it is being restarted`));
      pending.clear();
      if (!closing) {
        log(`engine thread exited with code ${code}: restarting it`);
        boot().catch((e: Error) => log(`engine restart failed: ${e.message}`));
      }
    });
  });
  let booting!: Promise<Extract<FromWorker, { type: "ready" }>>;
  // A (re)start nobody waits on yet must not fail unhandled: that would end the process. The
  // next request awaits `booting` and gets its error.
  const boot = () => {
    booting = start();
    booting.catch(() => {});
    return booting;
  };
  let settling = Promise.resolve(); // the last request's clean-up
  const first = await boot();
  collectGarbage();
  const idleRss = process.memoryUsage().rss;
  // After a request, memory the engine thread kept (V8 keeps its grown heap) goes with the thread:
  // more than 10% (and 32 MiB) over idle, it is replaced by a fresh one before the next request
  // runs. The floor spares small models a reload after every request for a few MiB.
  const recycle = async () => {
    collectGarbage();
    if (process.memoryUsage().rss <= Math.max(idleRss * 1.1, idleRss + 32 * 2 ** 20)) return;
    log(`engine thread holds ${Math.round((process.memoryUsage().rss - idleRss) / 2 ** 20)} MiB over idle: replacing it`);
    const old = worker;
    boot();
    recycling.add(old);
    await old.terminate();
    await booting;
    collectGarbage();
  };
  return {
    file: first.file, nCtxTrain: first.nCtxTrain, backend: first.backend,
    async run(job, onText, signal) {
      await settling;
      await booting;
      const id = randomUUID();
      const w = worker;
      const cancel = () => {
        w.postMessage({ type: "cancel", id, reason: (signal.reason as Error)?.message ?? "cancelled" } satisfies ToWorker);
        // A step that does not end (it should not happen) is ended with the thread.
        setTimeout(() => { if (pending.has(id)) void w.terminate(); }, CANCEL_GRACE_MS).unref();
      };
      signal.addEventListener("abort", cancel, { once: true });
      return new Promise<JobOutcome>((resolve, reject) => {
        pending.set(id, { onText, resolve, reject, signal });
        w.postMessage({ type: "run", id, job } satisfies ToWorker);
      }).finally(() => {
        signal.removeEventListener("abort", cancel); // the signal outlives the request on a kept-alive connection
      });
    },
    afterRequest() {
      // A turn later, when the request's closures are gone; the next request waits for it.
      settling = new Promise((r) => setImmediate(r)).then(recycle).catch((e: Error) => log(`engine thread replacement failed: ${e.message}`));
    },
    async close() {
      closing = true;
      // A replacement still loading (the last request's clean-up) finishes first: stopping it
      // half-loaded would fail its start with no one left to hear it.
      await settling;
      await worker.terminate();
    },
  };
}
