// Model download against two local servers that mimic the hub: the "hub" (its model API and
// `resolve/main/FILE`, which redirects to another origin as the real hub does) and the "CDN" (the
// bytes, with Range support). Each test changes how the CDN answers: a cut mid-body, a stall, a
// changed file, a server that ignores Range; and checks the bytes, the requests and the errors.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { execFile, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import { writeRandomModel } from "../src/model/random-model.js";
import { parseModelRef, pickQuant, resolveModel, urlCachePath, defaultCacheDir, type ResolveOptions } from "../src/download/model-ref.js";
import { UsageError } from "../src/errors.js";
import { tempDir } from "./support/tmp.js";

delete process.env.HF_TOKEN; // the tests say which token, if any, is sent

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const dir = tempDir();
const source = path.join(dir, "tiny.gguf");
writeRandomModel(source, "smollm2-135m", { shape: { nLayers: 1, dim: 64, nHeads: 2, nKvHeads: 1, nFf: 128, nVocab: 300, nCtxTrain: 256 } });
const MODEL = fs.readFileSync(source); // ~230 KB
const OTHER = Buffer.concat([MODEL, Buffer.alloc(1000, 7)]); // "the file changed on the server"

// The repos the hub holds: path -> bytes.
const REPO_FILES: Record<string, Buffer> = {
  "acme/tiny-GGUF/tiny-Q8_0.gguf": MODEL,
  "acme/tiny-GGUF/tiny-Q4_K_M.gguf": MODEL,
  "acme/tiny-GGUF/tiny-Q4_K_S.gguf": MODEL,
  "acme/tiny-GGUF/tiny-F16.gguf": MODEL,
  "acme/tiny-GGUF/tiny-BF16.gguf": MODEL,
  "acme/tiny-GGUF/README.md": Buffer.from("# tiny\n"),
  "acme/notes/model.gguf": Buffer.from("<html>this is not a model</html>"),
};

interface Seen { server: "hub" | "cdn"; method: string; url: string; range?: string; auth?: string }
let seen: Seen[] = [];
const record = (server: Seen["server"], req: http.IncomingMessage) =>
  seen.push({ server, method: req.method!, url: req.url!, range: req.headers.range, auth: req.headers.authorization });

/** How the CDN answers the next requests; null = correctly, with Range support. */
let cdnHook: ((req: http.IncomingMessage, res: http.ServerResponse, data: Buffer) => void) | null = null;
let hubStatus: number | null = null; // answer every hub request with this status

function serveBytes(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer) {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const etag = `"${data.length}"`;
  if (!m) {
    res.writeHead(200, { "content-length": data.length, etag });
    return res.end(data);
  }
  const s = Number(m[1]);
  if (s >= data.length) {
    res.writeHead(416, { "content-range": `bytes */${data.length}` });
    return res.end();
  }
  res.writeHead(206, { "content-length": data.length - s, "content-range": `bytes ${s}-${data.length - 1}/${data.length}`, etag });
  res.end(data.subarray(s));
}

/** Headers for the whole file, half of it, then the connection dropped. */
function cutHalfway(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer) {
  res.writeHead(200, { "content-length": data.length, etag: `"${data.length}"` });
  res.write(data.subarray(0, data.length >> 1), () => setTimeout(() => req.socket.destroy(), 30));
}

const cdn = http.createServer((req, res) => {
  record("cdn", req);
  const data = REPO_FILES[decodeURIComponent(new URL(req.url!, cdnUrl).pathname.replace(/^\/blobs\//, ""))];
  if (!data) { res.writeHead(404); return res.end(); }
  if (cdnHook) cdnHook(req, res, data);
  else serveBytes(req, res, data);
});

const hub = http.createServer((req, res) => {
  record("hub", req);
  if (hubStatus !== null) { res.writeHead(hubStatus); return res.end(); }
  const api = /^\/api\/models\/([^/]+)\/([^/]+)$/.exec(req.url!);
  if (api) {
    const prefix = `${api[1]}/${api[2]}/`;
    const names = Object.keys(REPO_FILES).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
    if (names.length === 0) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ id: `${api[1]}/${api[2]}`, siblings: names.map((rfilename) => ({ rfilename })) }));
  }
  const file = /^\/([^/]+)\/([^/]+)\/resolve\/main\/(.+)$/.exec(req.url!);
  if (file && REPO_FILES[`${file[1]}/${file[2]}/${decodeURIComponent(file[3])}`]) {
    res.writeHead(302, { location: `${cdnUrl}/blobs/${file[1]}/${file[2]}/${file[3]}` });
    return res.end();
  }
  if (req.url === "/loop") { res.writeHead(302, { location: "/loop" }); return res.end(); }
  res.writeHead(404);
  res.end();
});

const listen = (s: http.Server) => new Promise<string>((ok) => s.listen(0, "127.0.0.1", () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
const hubUrl = await listen(hub);
const cdnUrl = await listen(cdn);
after(() => {
  for (const s of [hub, cdn]) { s.closeAllConnections(); s.close(); }
});

/** A fresh cache folder, the hub's endpoint, a 2 s stall timeout (tests that stall set less). */
function opts(extra: Partial<ResolveOptions> = {}): ResolveOptions & { cacheDir: string } {
  return { cacheDir: fs.mkdtempSync(path.join(dir, "cache-")), endpoint: hubUrl, stallTimeoutMs: 2000, ...extra };
}

function reset() {
  seen = [];
  cdnHook = null;
  hubStatus = null;
}

const TINY = "hf:acme/tiny-GGUF/tiny-Q8_0.gguf";
const cachedFile = (cache: string) => path.join(cache, "models", "acme", "tiny-GGUF", "tiny-Q8_0.gguf");

test("a fresh hf: download follows the hub's redirect to the CDN and is byte-identical, with no .part or lock left", async () => {
  reset();
  const o = opts();
  const progress: number[] = [];
  const file = await resolveModel(TINY, { ...o, onProgress: (p) => progress.push(p.bytes) });
  assert.equal(file, cachedFile(o.cacheDir));
  assert.ok(fs.readFileSync(file).equals(MODEL));
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ["tiny-Q8_0.gguf"]);
  assert.deepEqual(seen.map((s) => `${s.server} ${s.method} ${s.url}`), [
    "hub GET /acme/tiny-GGUF/resolve/main/tiny-Q8_0.gguf",
    "cdn GET /blobs/acme/tiny-GGUF/tiny-Q8_0.gguf",
  ]);
  assert.equal(seen[1].range, undefined);
  assert.equal(progress[0], 0);
  assert.equal(progress.at(-1), MODEL.length);
});

test("an existing complete file is used without any request", async () => {
  reset();
  const o = opts();
  fs.mkdirSync(path.dirname(cachedFile(o.cacheDir)), { recursive: true });
  fs.writeFileSync(cachedFile(o.cacheDir), MODEL);
  assert.equal(await resolveModel(TINY, o), cachedFile(o.cacheDir));
  assert.deepEqual(seen, []);
});

test("a download cut mid-body keeps its .part; the rerun sends Range: bytes=N- for exactly the bytes kept and ends byte-identical", async () => {
  reset();
  const o = opts();
  const part = cachedFile(o.cacheDir) + ".part";
  cdnHook = cutHalfway;
  await assert.rejects(resolveModel(TINY, o), (e: Error) => {
    assert.match(e.message, /the connection broke after \d+ of 230\d+ bytes .*is kept and a rerun resumes it/);
    return true;
  });
  const kept = fs.statSync(part).size;
  assert.ok(kept > 0 && kept <= MODEL.length >> 1, `kept ${kept} bytes`);
  assert.ok(fs.readFileSync(part).equals(MODEL.subarray(0, kept)));
  assert.ok(!fs.existsSync(cachedFile(o.cacheDir)), "no final file after a cut");
  assert.ok(!fs.existsSync(cachedFile(o.cacheDir) + ".lock"), "the lock is released");

  reset();
  const file = await resolveModel(TINY, o);
  assert.ok(fs.readFileSync(file).equals(MODEL));
  const body = seen.filter((s) => s.server === "cdn");
  assert.equal(body.length, 1);
  assert.equal(body[0].range, `bytes=${kept}-`);
  assert.ok(!fs.existsSync(part));
});

test("a server that ignores Range (200 on a resume) restarts from zero and still ends byte-identical", async () => {
  reset();
  const o = opts();
  cdnHook = cutHalfway;
  await assert.rejects(resolveModel(TINY, o), /connection broke/);
  reset();
  cdnHook = (_req, res, data) => { res.writeHead(200, { "content-length": data.length }); res.end(data); };
  const file = await resolveModel(TINY, o);
  assert.match(seen.find((s) => s.server === "cdn")!.range ?? "", /^bytes=\d+-$/);
  assert.ok(fs.readFileSync(file).equals(MODEL));
});

test("a resume whose Content-Range total differs from the first answer's (the file changed) is an error that deletes the .part", async () => {
  reset();
  const o = opts();
  const part = cachedFile(o.cacheDir) + ".part";
  cdnHook = cutHalfway;
  await assert.rejects(resolveModel(TINY, o), /connection broke/);
  reset();
  cdnHook = (req, res) => serveBytes(req, res, OTHER);
  await assert.rejects(resolveModel(TINY, o), (e: Error) => {
    assert.equal(e.message.includes(`is now ${OTHER.length} bytes but the partial download was of a ${MODEL.length}-byte file`), true, e.message);
    assert.match(e.message, /deleted .*\.part, a rerun downloads it again/);
    return true;
  });
  assert.ok(!fs.existsSync(part));
  reset();
  assert.ok(fs.readFileSync(await resolveModel(TINY, o)).equals(MODEL), "the rerun starts over");
  assert.equal(seen.find((s) => s.server === "cdn")!.range, undefined);
});

test("a body that ends cleanly short of its Content-Range total is an error that keeps the .part; the next run completes it", async () => {
  reset();
  const o = opts();
  const part = cachedFile(o.cacheDir) + ".part";
  cdnHook = cutHalfway;
  await assert.rejects(resolveModel(TINY, o), /connection broke/);
  const first = fs.statSync(part).size;
  reset();
  // A chunked 206 (no Content-Length) that announces the whole tail and sends 1000 bytes of it.
  cdnHook = (req, res, data) => {
    const s = Number(/^bytes=(\d+)-$/.exec(req.headers.range!)![1]);
    res.writeHead(206, { "content-range": `bytes ${s}-${data.length - 1}/${data.length}` });
    res.end(data.subarray(s, s + 1000));
  };
  await assert.rejects(resolveModel(TINY, o), new RegExp(`the server sent ${first + 1000} of ${MODEL.length} bytes; .*is kept and a rerun resumes it`));
  assert.equal(fs.statSync(part).size, first + 1000);
  reset();
  assert.ok(fs.readFileSync(await resolveModel(TINY, o)).equals(MODEL));
  assert.equal(seen.find((s) => s.server === "cdn")!.range, `bytes=${first + 1000}-`);
});

test("a complete .part (killed before the rename) is answered 416 and renamed after the checks, without a body", async () => {
  reset();
  const o = opts();
  fs.mkdirSync(path.dirname(cachedFile(o.cacheDir)), { recursive: true });
  fs.writeFileSync(cachedFile(o.cacheDir) + ".part", MODEL);
  const file = await resolveModel(TINY, o);
  assert.equal(seen.find((s) => s.server === "cdn")!.range, `bytes=${MODEL.length}-`);
  assert.ok(fs.readFileSync(file).equals(MODEL));
});

test("a server that stalls after the headers fails after the timeout, keeps the bytes it got, and says a rerun resumes", async () => {
  reset();
  const o = opts({ stallTimeoutMs: 300 });
  cdnHook = (_req, res, data) => {
    res.writeHead(200, { "content-length": data.length });
    res.write(data.subarray(0, 4096)); // then nothing, the connection left open
  };
  const t0 = performance.now();
  await assert.rejects(resolveModel(TINY, o), /no data for 0\.3 s \(--download-timeout\); the partial download .*\.part \(4096 of 230\d+ bytes\) is kept and a rerun resumes it/);
  const ms = performance.now() - t0;
  assert.ok(ms >= 300 && ms < 3000, `failed after ${ms.toFixed(0)} ms`);
  assert.equal(fs.statSync(cachedFile(o.cacheDir) + ".part").size, 4096);
});

test("a server that never answers fails after the timeout", async () => {
  reset();
  const o = opts({ stallTimeoutMs: 300 });
  cdnHook = () => {}; // no headers at all
  const t0 = performance.now();
  await assert.rejects(resolveModel(TINY, o), /no answer for 0\.3 s/);
  assert.ok(performance.now() - t0 < 3000);
});

test("404 is a UsageError naming the URL; the token is neither in it nor sent to the CDN", async () => {
  reset();
  const token = "hf_secret_123";
  await assert.rejects(resolveModel("hf:acme/tiny-GGUF/missing.gguf", opts({ token })), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, `${hubUrl}/acme/tiny-GGUF/resolve/main/missing.gguf: not found (HTTP 404)`);
    return true;
  });
  reset();
  await resolveModel(TINY, opts({ token }));
  assert.equal(seen.find((s) => s.server === "hub")!.auth, `Bearer ${token}`);
  assert.equal(seen.find((s) => s.server === "cdn")!.auth, undefined, "the token does not follow the redirect to another origin");
});

test("401 and 403 are UsageErrors that point to HF_TOKEN", async () => {
  reset();
  hubStatus = 401;
  await assert.rejects(resolveModel(TINY, opts()), (e: Error) => e instanceof UsageError && /HTTP 401, access denied: .*set HF_TOKEN/.test(e.message));
  hubStatus = 403;
  await assert.rejects(resolveModel(TINY, opts({ token: "t" })), (e: Error) => e instanceof UsageError && /HTTP 403, .*the HF_TOKEN sent was refused/.test(e.message) && !e.message.includes("Bearer"));
});

test("a file that is not a GGUF is refused after download and deleted", async () => {
  reset();
  const o = opts();
  await assert.rejects(resolveModel("hf:acme/notes/model.gguf", o), /not a GGUF file \(it starts with "<htm"\); deleted the download/);
  assert.deepEqual(fs.readdirSync(path.join(o.cacheDir, "models", "acme", "notes")), []);
});

test("a redirect loop stops after 10 hops", async () => {
  reset();
  await assert.rejects(resolveModel(`${hubUrl}/loop`, opts()), /more than 10 redirects/);
  assert.equal(seen.length, 11);
});

test(":QUANT picks the one matching .gguf (F16 is not BF16); none or several list the candidates; a lone cached match needs no request", async () => {
  reset();
  const o = opts();
  const q8 = await resolveModel("hf:acme/tiny-GGUF:q8_0", o);
  assert.equal(q8, cachedFile(o.cacheDir));
  assert.equal(seen[0].url, "/api/models/acme/tiny-GGUF");
  assert.equal(path.basename(await resolveModel("hf:acme/tiny-GGUF:F16", o)), "tiny-F16.gguf");
  await assert.rejects(resolveModel("hf:acme/tiny-GGUF:Q5_K_M", o), (e: Error) => e instanceof UsageError
    && e.message === `hf:acme/tiny-GGUF: no .gguf file's name contains "Q5_K_M" (its .gguf files: tiny-Q8_0.gguf, tiny-Q4_K_M.gguf, tiny-Q4_K_S.gguf, tiny-F16.gguf, tiny-BF16.gguf)`);
  await assert.rejects(resolveModel("hf:acme/tiny-GGUF:Q4_K", o), (e: Error) => e instanceof UsageError
    && e.message === `hf:acme/tiny-GGUF: 2 .gguf files match "Q4_K" (tiny-Q4_K_M.gguf, tiny-Q4_K_S.gguf); name one as hf:acme/tiny-GGUF/FILE.gguf`);
  reset();
  assert.equal(await resolveModel("hf:acme/tiny-GGUF:Q8_0", o), q8);
  assert.deepEqual(seen, [], "the cached Q8_0 file answers without asking the hub");
  assert.equal(pickQuant(["a-BF16.gguf", "a-F16.gguf", "notes-F16.md"], "f16", "x"), "a-F16.gguf");
  assert.equal(pickQuant(["a-BF16.gguf"], "F16", "x"), "a-BF16.gguf");
});

test("two downloads of the same file at once: the second waits on the lock and makes no body request", async () => {
  reset();
  const o = opts();
  const lines: string[] = [];
  const [a, b] = await Promise.all([resolveModel(TINY, o), resolveModel(TINY, { ...o, log: (l) => lines.push(l) })]);
  assert.equal(a, b);
  assert.ok(fs.readFileSync(a).equals(MODEL));
  assert.equal(seen.filter((s) => s.server === "cdn").length, 1);
  assert.match(lines[0], new RegExp(`^waiting for process ${process.pid}, which is downloading `));
});

test("a lock left by a dead process is taken over", async () => {
  reset();
  const o = opts();
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  fs.mkdirSync(path.dirname(cachedFile(o.cacheDir)), { recursive: true });
  fs.writeFileSync(cachedFile(o.cacheDir) + ".lock", String(dead));
  assert.ok(fs.readFileSync(await resolveModel(TINY, o)).equals(MODEL));
  assert.ok(!fs.existsSync(cachedFile(o.cacheDir) + ".lock"));
});

test("an http URL is cached under urls/<host>_<port>/<path>, its names made safe", async () => {
  reset();
  const o = opts();
  const file = await resolveModel(`${cdnUrl}/blobs/acme/tiny-GGUF/tiny-Q8_0.gguf?sig=abc`, o);
  const port = new URL(cdnUrl).port;
  assert.equal(file, path.join(o.cacheDir, "urls", `127.0.0.1_${port}`, "blobs", "acme", "tiny-GGUF", "tiny-Q8_0.gguf"));
  assert.ok(fs.readFileSync(file).equals(MODEL));
  const c = "/c";
  assert.equal(urlCachePath(c, new URL("https://h.example/a/%2e%2e/%2E%2E/b%2F..%2Fc/m%20x.gguf")), path.join(c, "urls", "h.example", "b_.._c", "m_x.gguf"));
  assert.throws(() => urlCachePath(c, new URL("https://h.example/dir/")), /names no file/);
});

test("references: the two hf: forms, URLs and paths; bad hf: syntax is a UsageError naming the forms", () => {
  assert.deepEqual(parseModelRef("hf:a/b/sub/f.GGUF"), { kind: "hf", owner: "a", repo: "b", file: "sub/f.GGUF" });
  assert.deepEqual(parseModelRef("hf:a/b.c-d:Q4_K_M"), { kind: "hf-quant", owner: "a", repo: "b.c-d", quant: "Q4_K_M" });
  assert.deepEqual(parseModelRef("./models/m.gguf"), { kind: "file", path: "./models/m.gguf" });
  assert.equal(parseModelRef("HTTPS://x.example/m.gguf").kind, "url");
  for (const bad of ["hf:a", "hf:a/b", "hf:a/b/f.bin", "hf:../b/f.gguf", "hf:a/../f.gguf", "hf:a/b/../f.gguf", "hf:a/b/x/./f.gguf", "hf:a/b:", "hf:a/b:Q4/K", "hf:/a/b/f.gguf"]) {
    assert.throws(() => parseModelRef(bad), (e: Error) => e instanceof UsageError && e.message === `bad model reference "${bad}": expected hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO:QUANT`, bad);
  }
  assert.equal(defaultCacheDir({ PARALLELCOMP_CACHE: "/x/c", XDG_CACHE_HOME: "/y" }), "/x/c");
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: "/y" }), "/y/parallelcomp");
  assert.ok(defaultCacheDir({ XDG_CACHE_HOME: "relative" }).endsWith(path.join(".cache", "parallelcomp")), "a relative XDG_CACHE_HOME is ignored");
});

/** The CLI as a child process (async: the servers answer from this process's event loop). */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((ok) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } }, (e, out, err) => ok({ code: e ? (e.code as number) : 0, out, err }));
  });
}

test("CLI: pull prints only the path; a second pull makes no request; inspect and generate take hf: references; errors are one line", async () => {
  reset();
  const cache = fs.mkdtempSync(path.join(dir, "cli-"));
  const env = { HF_ENDPOINT: hubUrl, PARALLELCOMP_CACHE: cache };
  const want = path.join(cache, "models", "acme", "tiny-GGUF", "tiny-Q8_0.gguf");

  const pull = await cli(["pull", "hf:acme/tiny-GGUF:Q8_0"], env);
  assert.equal(pull.code, 0, pull.err);
  assert.equal(pull.out, want + "\n");
  assert.equal(pull.err, `parallelcomp: downloading ${hubUrl}/acme/tiny-GGUF/resolve/main/tiny-Q8_0.gguf (${(MODEL.length / 1024).toFixed(1)} KiB) into ${want}\n`);
  assert.ok(fs.readFileSync(want).equals(MODEL));

  reset();
  const doc = path.join(dir, "doc.txt");
  fs.writeFileSync(doc, "a short document");
  const [again, inspect, gen] = await Promise.all([
    cli(["pull", "hf:acme/tiny-GGUF/tiny-Q8_0.gguf", "--quiet"], env),
    cli(["inspect", TINY, "--json"], env),
    cli(["generate", "-m", TINY, "--prompt-tokens", "5,6,7", "-n", "2", "--json"], env),
  ]);
  assert.deepEqual([again.code, again.out, again.err], [0, want + "\n", ""]);
  assert.equal(inspect.code, 0, inspect.err);
  const info = JSON.parse(inspect.out);
  assert.deepEqual([info.file, info.layers, info.embeddingLength], [want, 1, 64]);
  assert.equal(gen.code, 0, gen.err);
  assert.equal(JSON.parse(gen.out).tokens.length, 2);
  assert.deepEqual(seen, [], "the cached file is used: no request from pull, inspect or generate");

  cdnHook = () => {}; // the CDN never answers
  const [bad, missing, local, stalled] = await Promise.all([
    cli(["ask", "-m", "hf:acme", "-f", doc, "-q", "x"], env),
    cli(["pull", "hf:acme/tiny-GGUF/nope.gguf"], env),
    cli(["pull", "model.gguf"], env),
    cli(["pull", "hf:acme/tiny-GGUF/tiny-F16.gguf", "--download-timeout", "0.3"], env),
  ]);
  assert.deepEqual([bad.code, bad.err], [2, `parallelcomp: bad model reference "hf:acme": expected hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO:QUANT\n`]);
  assert.deepEqual([missing.code, missing.err], [2, `parallelcomp: ${hubUrl}/acme/tiny-GGUF/resolve/main/nope.gguf: not found (HTTP 404)\n`]);
  assert.deepEqual([local.code, local.err], [2, `parallelcomp: pull wants a remote model, got "model.gguf": expected hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO:QUANT or an http(s) URL\n`]);
  assert.equal(stalled.code, 1);
  assert.match(stalled.err, /^parallelcomp: http:\S+\/blobs\/acme\/tiny-GGUF\/tiny-F16.gguf: no answer for 0\.3 s \(--download-timeout\)\n$/);
});
