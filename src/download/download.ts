// One file over HTTP into a final path, safely: bytes go to `<file>.part`, a rerun resumes it with
// a Range request, the result is checked (the size the server announced, the GGUF magic) and only
// then renamed into place, so a file under its final name is always complete. `<file>.lock` keeps
// two processes off the same download; `<file>.part.json` remembers the announced size and ETag so
// a resume notices a file that changed on the server.
//
// node:http rather than fetch: we see every redirect hop (the hub answers a file with a redirect to
// its CDN, and the token must not follow it to another origin), a stalled body is noticed per chunk
// by our own timer that destroys the socket, and the status of a Range request (206, 200, 416) is
// read before any byte is written. fetch hides the hops and would need an AbortController per chunk.

import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { UsageError } from "../errors.js";

export const DEFAULT_STALL_SECONDS = 30;
const MAX_REDIRECTS = 10;
const USER_AGENT = "parallelcomp/0.1.0";
const GGUF_MAGIC = Buffer.from("GGUF", "latin1");

export interface DownloadProgress {
  url: string; // shown form: no credentials, no query
  file: string; // the final path
  bytes: number; // bytes in the .part so far
  total: number | null; // the announced size; null when the server gave none
  resumedFrom: number; // bytes already there when this request started
}

export interface HttpOptions {
  /** `Authorization: Bearer` sent only to `tokenOrigin` (e.g. "https://huggingface.co"), never across a redirect elsewhere. */
  token?: string;
  tokenOrigin?: string;
  /** Give up after this long without a byte (connecting, waiting for headers, or mid-body). */
  stallTimeoutMs?: number;
}

export interface DownloadOptions extends HttpOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** One-line notices (waiting for another process's download). */
  log?: (line: string) => void;
}

/** A URL as it may be shown: origin and path, never a user:password or a signed query string. */
export function showUrl(url: URL): string {
  return url.origin + url.pathname;
}

class StallError extends Error {}

/** A local file could not be created or written (the message says which and why). */
class DiskError extends Error {}

/** A timer that fires `onStall` unless kicked again within `ms`. */
function watchdog(ms: number, onStall: () => void) {
  let t: NodeJS.Timeout | undefined;
  return {
    kick() { clearTimeout(t); t = setTimeout(onStall, ms); },
    stop() { clearTimeout(t); },
  };
}

interface Response {
  res: http.IncomingMessage;
  url: URL; // the URL that answered, after redirects
  dog: ReturnType<typeof watchdog>; // kick it per body chunk; it destroys `res` on a stall
}

/** One GET (no redirects followed); the stall timer runs from the request to the end of the body. */
function send(url: URL, headers: Record<string, string>, stallMs: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    let res: http.IncomingMessage | undefined;
    const dog = watchdog(stallMs, () => {
      const e = new StallError(`no data for ${stallMs / 1000} s`);
      if (res) res.destroy(e);
      else req.destroy(e);
    });
    const req = (url.protocol === "https:" ? https : http).get(url, { headers });
    dog.kick();
    req.on("response", (r) => {
      res = r;
      dog.kick();
      r.on("close", () => dog.stop());
      resolve({ res: r, url, dog });
    });
    req.on("error", (e) => {
      dog.stop();
      reject(e);
    });
  });
}

/** GET following redirects (at most MAX_REDIRECTS, never https -> http); the token only to its origin. */
async function get(start: URL, headers: Record<string, string>, o: HttpOptions): Promise<Response> {
  const stallMs = o.stallTimeoutMs ?? DEFAULT_STALL_SECONDS * 1000;
  let url = start;
  for (let hop = 0; ; hop++) {
    const h: Record<string, string> = { "user-agent": USER_AGENT, "accept-encoding": "identity", ...headers };
    if (o.token && o.tokenOrigin === url.origin) h.authorization = `Bearer ${o.token}`;
    let r: Response;
    try {
      r = await send(url, h, stallMs);
    } catch (e) {
      if (e instanceof StallError) throw new Error(`${showUrl(url)}: no answer for ${stallMs / 1000} s (--download-timeout)`);
      throw new Error(`cannot reach ${showUrl(url)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const status = r.res.statusCode ?? 0;
    const location = r.res.headers.location;
    if (status < 300 || status >= 400 || !location) return r;
    r.res.resume(); // a redirect's body is not read
    if (hop === MAX_REDIRECTS) throw new Error(`${showUrl(start)}: more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new Error(`${showUrl(url)} redirects to an invalid URL`);
    }
    if (next.protocol !== "https:" && next.protocol !== "http:") throw new Error(`${showUrl(url)} redirects to a ${next.protocol} URL`);
    if (url.protocol === "https:" && next.protocol === "http:") throw new Error(`${showUrl(url)} redirects from https to plain http (${showUrl(next)}); refused`);
    url = next;
  }
}

/** The error for a status that is neither success nor redirect; consumes the body. */
function statusError(r: Response, o: HttpOptions): Error {
  r.res.resume();
  const status = r.res.statusCode ?? 0;
  const where = showUrl(r.url);
  if (status === 404) return new UsageError(`${where}: not found (HTTP 404)`);
  if (status === 401 || status === 403) {
    return new UsageError(`${where}: HTTP ${status}, access denied: ${o.token ? "the HF_TOKEN sent was refused (has it access to this repo?)" : "the repo may be gated or private; set HF_TOKEN to a token with access"}`);
  }
  return new Error(`${where}: HTTP ${status}${r.res.statusMessage ? ` ${r.res.statusMessage}` : ""}`);
}

/** GET a JSON document (at most `maxBytes`), following redirects. */
export async function getJson(url: URL, o: HttpOptions = {}, maxBytes = 16 << 20): Promise<unknown> {
  const r = await get(url, { accept: "application/json" }, o);
  if (r.res.statusCode !== 200) throw statusError(r, o);
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of r.res as AsyncIterable<Buffer>) {
      r.dog.kick();
      n += c.length;
      if (n > maxBytes) { r.res.destroy(); throw new Error(`${showUrl(r.url)}: answer larger than ${maxBytes} bytes`); }
      chunks.push(c);
    }
  } catch (e) {
    if (e instanceof StallError) throw new Error(`${showUrl(r.url)}: no data for ${(o.stallTimeoutMs ?? DEFAULT_STALL_SECONDS * 1000) / 1000} s (--download-timeout)`);
    throw e;
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Error(`${showUrl(r.url)}: the answer is not JSON`);
  }
}

interface PartMeta {
  total: number | null;
  etag: string | null;
}

function readMeta(file: string): PartMeta | null {
  try {
    const m = JSON.parse(fs.readFileSync(file, "utf8"));
    return { total: typeof m.total === "number" ? m.total : null, etag: typeof m.etag === "string" ? m.etag : null };
  } catch {
    return null;
  }
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

// Content-Range: "bytes START-END/TOTAL" or "bytes */TOTAL" (TOTAL may be "*").
function contentRange(h: string | undefined): { start: number | null; total: number | null } | null {
  const m = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(h?.trim() ?? "");
  if (!m) return null;
  return { start: m[1] === undefined ? null : Number(m[1]), total: m[2] === "*" ? null : Number(m[2]) };
}

function diskError(what: string, e: unknown): DiskError {
  const code = (e as NodeJS.ErrnoException).code;
  const hint = code === "ENOSPC" ? " (disk full)" : code === "EACCES" || code === "EPERM" || code === "EROFS" ? " (set PARALLELCOMP_CACHE to a writable folder)" : "";
  return new DiskError(`cannot ${what}: ${code ?? (e as Error).message}${hint}`);
}

/**
 * Downloads `url` to `dest` unless `dest` already exists (then no request at all: only a complete,
 * checked file is ever renamed to `dest`). Resolves to `dest`.
 */
export async function downloadFile(url: URL, dest: string, o: DownloadOptions = {}): Promise<string> {
  if (fs.existsSync(dest)) return dest;
  try {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
  } catch (e) {
    throw diskError(`create the folder ${path.dirname(dest)}`, e);
  }
  return withLock(`${dest}.lock`, dest, o.log, async () => {
    if (fs.existsSync(dest)) return dest; // another process finished it while we waited
    await fetchInto(url, dest, o);
    return dest;
  });
}

/**
 * Runs `fn` holding `lock` (created with O_EXCL, holding our pid). A lock whose process is gone is
 * stale (a killed download) and taken over; a live one is waited for. Two processes that find the
 * same stale lock at the same instant could both take it; a live download's lock is never taken.
 */
async function withLock<T>(lock: string, dest: string, log: ((line: string) => void) | undefined, fn: () => Promise<T>): Promise<T> {
  let said = false;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw diskError(`create the lock file ${lock}`, e);
    }
    let pid = NaN;
    try {
      pid = Number(fs.readFileSync(lock, "utf8").trim());
    } catch {
      continue; // removed between our open and our read
    }
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (!said && log) log(`waiting for process ${Number.isInteger(pid) ? pid : "?"}, which is downloading ${dest} (lock ${lock})`);
    said = true;
    await new Promise((r) => setTimeout(r, 200));
  }
  const release = () => fs.rmSync(lock, { force: true });
  process.on("exit", release);
  try {
    return await fn();
  } finally {
    process.off("exit", release);
    release();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** The files of one download. */
interface Target {
  url: URL;
  shown: string; // showUrl(url)
  dest: string;
  part: string; // `${dest}.part`: the bytes so far
  meta: string; // `${dest}.part.json`: PartMeta of the response that wrote them
}

const kept = (t: Target, bytes: number, total: number | null) =>
  `the partial download ${t.part} (${bytes}${total === null ? "" : ` of ${total}`} bytes) is kept and a rerun resumes it`;

function discard(t: Target) {
  fs.rmSync(t.part, { force: true });
  fs.rmSync(t.meta, { force: true });
}

/** The download proper, under the lock. At most one restart from zero (a .part the server disowns). */
async function fetchInto(url: URL, dest: string, o: DownloadOptions): Promise<void> {
  const t: Target = { url, shown: showUrl(url), dest, part: `${dest}.part`, meta: `${dest}.part.json` };
  for (let attempt = 0; ; attempt++) {
    const offset = attempt === 0 ? sizeOf(t.part) : 0;
    const meta = offset > 0 ? readMeta(t.meta) : null;
    const headers: Record<string, string> = {};
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      // If-Range: a changed file (another ETag) comes whole as a 200 instead of a wrong tail.
      if (meta?.etag && !meta.etag.startsWith("W/")) headers["if-range"] = meta.etag;
    }
    const r = await get(url, headers, o);
    const status = r.res.statusCode ?? 0;
    let start: number; // where this body goes in the file
    let total: number | null;

    if (status === 416 && offset > 0) {
      r.res.resume();
      const cr = contentRange(r.res.headers["content-range"]);
      if (cr?.total !== offset) {
        discard(t); // the .part is longer than the file: not a prefix of it
        continue;
      }
      start = total = offset; // the .part was already complete: check it and rename it
    } else if (status === 206 && offset > 0) {
      const cr = contentRange(r.res.headers["content-range"]);
      if (cr?.start !== offset) {
        r.res.destroy();
        discard(t); // not the tail we asked for: start over
        continue;
      }
      start = offset;
      total = cr.total;
    } else if (status === 200) {
      start = 0; // a fresh download, or the server ignored Range (or If-Range saw a new ETag): from zero
      const len = r.res.headers["content-length"];
      total = len !== undefined && /^\d+$/.test(len) ? Number(len) : null;
    } else {
      throw statusError(r, o);
    }

    if (start > 0 && meta?.total != null && total !== null && total !== meta.total) {
      r.res.destroy();
      discard(t);
      throw new Error(`${t.shown}: the file on the server is now ${total} bytes but the partial download was of a ${meta.total}-byte file (it changed); deleted ${t.part}, a rerun downloads it again`);
    }
    if (status !== 416) await receive(r, t, start, total, o);
    return finish(t, total);
  }
}

/** Writes the body of `r` into the .part from `start` (cut there first), reporting progress. */
async function receive(r: Response, t: Target, start: number, total: number | null, o: DownloadOptions): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fs.writeFileSync(t.meta, JSON.stringify({ total, etag: r.res.headers.etag ?? null } satisfies PartMeta));
    fh = await fsp.open(t.part, start === 0 ? "w" : "r+");
    await fh.truncate(start);
  } catch (e) {
    r.res.destroy();
    throw diskError(`write ${t.part}`, e);
  }
  let bytes = start;
  const progress = () => o.onProgress?.({ url: t.shown, file: t.dest, bytes, total, resumedFrom: start });
  progress();
  try {
    for await (const chunk of r.res as AsyncIterable<Buffer>) {
      r.dog.kick();
      try {
        await fh.write(chunk, 0, chunk.length, bytes);
      } catch (e) {
        r.res.destroy();
        throw diskError(`write ${t.part} (${kept(t, bytes, total)})`, e);
      }
      bytes += chunk.length;
      progress();
    }
  } catch (e) {
    if (e instanceof DiskError) throw e;
    if (e instanceof StallError) {
      throw new Error(`${t.shown}: no data for ${(o.stallTimeoutMs ?? DEFAULT_STALL_SECONDS * 1000) / 1000} s (--download-timeout); ${kept(t, bytes, total)}`);
    }
    throw new Error(`${t.shown}: the connection broke after ${bytes}${total === null ? "" : ` of ${total}`} bytes (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${kept(t, bytes, total)}`);
  } finally {
    await fh.close();
  }
}

/** The size check, the GGUF magic, and the atomic rename of the .part to its final name. */
function finish(t: Target, total: number | null): void {
  const size = sizeOf(t.part);
  if (total !== null && size < total) throw new Error(`${t.shown}: the server sent ${size} of ${total} bytes; ${kept(t, size, total)}`);
  if (total !== null && size > total) {
    discard(t);
    throw new Error(`${t.shown}: the download is ${size} bytes, more than the ${total} the server announced; deleted ${t.part}, a rerun downloads it again`);
  }
  const head = Buffer.alloc(4);
  const fd = fs.openSync(t.part, "r");
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (!head.equals(GGUF_MAGIC)) {
    discard(t);
    throw new Error(`${t.shown}: not a GGUF file (it starts with ${JSON.stringify(head.toString("latin1"))}); deleted the download`);
  }
  try {
    fs.renameSync(t.part, t.dest);
  } catch (e) {
    throw diskError(`rename ${t.part} to ${t.dest}`, e);
  }
  fs.rmSync(t.meta, { force: true });
}
