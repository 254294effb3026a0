// The server's engine thread. The HTTP thread (server.ts) keeps answering /health, queueing,
// 429s and cancellations while a request runs here: a long prefill is one long call, and on
// the event loop it froze the server for minutes. Messages (ids are the server's):
//   in:  { type: "run", id, job }   { type: "cancel", id, reason }
//   out: { type: "ready", file, nCtxTrain, backend }   { type: "text", id, s }
//        { type: "done", id, outcome }   { type: "failed", id, kind, cancelled, message }
// A cancel is seen between steps of the run (a batch of chunks, a prefill piece, a token).

import { parentPort, workerData } from "node:worker_threads";
import { collectGarbage } from "./gc.js";
import { loadEngine, type EngineOptions } from "../backends/index.js";
import { runJob, type JobLimits } from "./jobs.js";
import { errorKind, type ErrorKind } from "../errors.js";
import type { Job } from "./requests.js";

export interface WorkerData {
  file?: string;
  options: EngineOptions;
  limits: JobLimits;
}

export type ToWorker = { type: "run"; id: string; job: Job } | { type: "cancel"; id: string; reason: string };
export type FromWorker =
  | { type: "ready"; file: string; nCtxTrain: number; backend: { name: string; device: string; notice?: string } }
  | { type: "text"; id: string; s: string }
  | { type: "done"; id: string; outcome: Awaited<ReturnType<typeof runJob>> }
  | { type: "failed"; id: string; kind: ErrorKind; cancelled: boolean; message: string };

const port = parentPort!;
const data = workerData as WorkerData;
const model = loadEngine(data.file, data.options);
const send = (m: FromWorker) => port.postMessage(m);
const running = new Map<string, AbortController>();

send({ type: "ready", file: model.file, nCtxTrain: model.config.nCtxTrain, backend: model.backend });

port.on("message", (m: ToWorker) => {
  if (m.type === "cancel") {
    running.get(m.id)?.abort(new Error(m.reason));
    return;
  }
  const stop = new AbortController();
  running.set(m.id, stop);
  runJob(model, m.job, data.limits, { onText: (s) => send({ type: "text", id: m.id, s }) }, stop.signal)
    .then((outcome) => send({ type: "done", id: m.id, outcome }))
    .catch((e: Error) => send({ type: "failed", id: m.id, kind: errorKind(e), cancelled: stop.signal.aborted, message: e.message }))
    .finally(() => {
      running.delete(m.id);
      collectGarbage(); // a long document's tokens and text go now, not at V8's leisure
    });
});
