// `parallelcomp serve`'s memory around one large request: RSS idle, the peak while the request
// runs, and RSS after it (when the server has given the memory back), read from /proc (Linux).
//   node dist/tools/server-memory.js [--mb 8] [--timeout 10] [serve options...]
// The request is a chat over MB megabytes of filler; a --request-timeout shorter than the run
// ends it with a 504, which is enough to see the memory come and go.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const args = process.argv.slice(2);
const take = (name: string, d: number) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return d;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const mb = take("mb", 8);
const timeout = take("timeout", 10);

const child = spawn(process.execPath, [BIN, "serve", "--port", "0", "--request-timeout", String(timeout), ...args], { stdio: ["ignore", "ignore", "pipe"] });
const url = await new Promise<string>((resolve, reject) => {
  let err = "";
  child.stderr!.on("data", (d) => { err += d; const m = /serving at (\S+)\/v1/.exec(err); if (m) resolve(m[1]); });
  child.on("exit", () => reject(new Error(err)));
});
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(500);
const idle = rss();
let peak = idle;
const watch = setInterval(() => { peak = Math.max(peak, rss()); }, 100);
const body = JSON.stringify({ max_tokens: 8, messages: [{ role: "user", content: "The grass is green. ".repeat(Math.ceil((mb * 2 ** 20) / 20)) + "\n\nWhat is the pass key?" }] });
const t0 = performance.now();
const r = await fetch(url + "/v1/chat/completions", { method: "POST", body, headers: { "content-type": "application/json" } });
await r.text();
clearInterval(watch);
const seconds = (performance.now() - t0) / 1000;
await sleep(2000); // the clean-up after the answer (and the engine thread's replacement)
console.log(`${mb} MB request: status ${r.status} after ${seconds.toFixed(1)} s; RSS idle ${idle.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB, after ${rss().toFixed(0)} MiB (${((rss() / idle - 1) * 100).toFixed(1)}% over idle)`);
child.kill();
