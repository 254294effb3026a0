// Model references: a local GGUF path, `hf:OWNER/REPO/FILE.gguf`, `hf:OWNER/REPO:QUANT` or an
// http(s) URL. A remote one resolves to a file in the cache folder, downloaded once (download.ts).
//
// The hub's layout (Hugging Face's, or a mirror's at $HF_ENDPOINT): a file is
// `${endpoint}/${owner}/${repo}/resolve/main/${file}` (usually a redirect to a CDN), and a repo's
// files are listed by `${endpoint}/api/models/${owner}/${repo}` as `{ siblings: [{ rfilename }] }`.
//
// Cache layout, under $PARALLELCOMP_CACHE, else $XDG_CACHE_HOME/parallelcomp, else
// ~/.cache/parallelcomp:
//   models/<owner>/<repo>/<file>     hf: references
//   urls/<host>[_<port>]/<path>      http(s) URLs (a folder of their own, so a host never meets an owner)

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { UsageError } from "../errors.js";
import { DEFAULT_STALL_SECONDS, downloadFile, getJson, showUrl, type DownloadProgress, type HttpOptions } from "./download.js";

export type ModelRef =
  | { kind: "file"; path: string }
  | { kind: "hf"; owner: string; repo: string; file: string } // file: a path inside the repo, ending .gguf
  | { kind: "hf-quant"; owner: string; repo: string; quant: string }
  | { kind: "url"; url: URL };

export const REF_SYNTAX = "expected hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO:QUANT";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/; // a hub owner or repo name (never "." or "..")
const QUANT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/; // Q4_K_M, IQ2_XXS, BF16, UD-Q4_K_XL
// A path segment inside a repo: no separators, no control characters, not "." or "..".
const segmentOk = (s: string) => s !== "" && s !== "." && s !== ".." && !/[\\\x00-\x1f]/.test(s);

/** What a `-m` value names; anything not `hf:` or http(s) is a local path, returned unchecked. */
export function parseModelRef(ref: string): ModelRef {
  if (/^https?:\/\//i.test(ref)) {
    let url: URL;
    try {
      url = new URL(ref);
    } catch {
      throw new UsageError(`model "${ref}" is not a valid URL`);
    }
    return { kind: "url", url };
  }
  if (!ref.startsWith("hf:")) return { kind: "file", path: ref };
  const body = ref.slice(3);
  const q = /^([^/:]+)\/([^/:]+):([^/:]+)$/.exec(body);
  if (q && NAME.test(q[1]) && NAME.test(q[2]) && QUANT.test(q[3])) return { kind: "hf-quant", owner: q[1], repo: q[2], quant: q[3] };
  const [owner, repo, ...file] = body.split("/");
  if (NAME.test(owner ?? "") && NAME.test(repo ?? "") && file.length > 0 && file.every(segmentOk) && /\.gguf$/i.test(file[file.length - 1])) {
    return { kind: "hf", owner, repo, file: file.join("/") };
  }
  throw new UsageError(`bad model reference "${ref}": ${REF_SYNTAX}`);
}

/** $PARALLELCOMP_CACHE, else $XDG_CACHE_HOME/parallelcomp (absolute only, as XDG asks), else ~/.cache/parallelcomp. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PARALLELCOMP_CACHE) return path.resolve(env.PARALLELCOMP_CACHE);
  if (env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)) return path.join(env.XDG_CACHE_HOME, "parallelcomp");
  return path.join(os.homedir(), ".cache", "parallelcomp");
}

/** $HF_ENDPOINT (the hub's own variable; a mirror or a test server), else https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): URL {
  const raw = (env.HF_ENDPOINT || "https://huggingface.co").replace(/\/+$/, "");
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch { /* said below */ }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) throw new UsageError(`HF_ENDPOINT "${raw}" is not an http(s) URL`);
  return url;
}

/** `${endpoint}/${path}` with each segment of `parts` escaped (the endpoint may carry a path of its own). */
function hubUrl(endpoint: URL, parts: string[]): URL {
  const base = endpoint.href.replace(/\/+$/, "");
  return new URL(`${base}/${parts.flatMap((p) => p.split("/")).map(encodeURIComponent).join("/")}`);
}

/** A URL's file under `urls/`: the host, then each path segment with anything unusual made "_". */
export function urlCachePath(cache: string, url: URL): string {
  const clean = (s: string) => {
    let d = s;
    try {
      d = decodeURIComponent(s);
    } catch { /* kept as sent */ }
    const c = d.replace(/[^A-Za-z0-9._-]/g, "_");
    return c === "." || c === ".." ? "_" : c;
  };
  const segs = url.pathname.split("/").filter((s) => s !== "").map(clean);
  if (segs.length === 0 || url.pathname.endsWith("/")) throw new UsageError(`model URL ${showUrl(url)} names no file`);
  const host = clean(url.hostname) + (url.port ? `_${url.port}` : "");
  return inside(cache, path.join(cache, "urls", host, ...segs));
}

/** `file`, asserted to lie under `cache` (names were checked; this guards the checks). */
function inside(cache: string, file: string): string {
  const rel = path.relative(cache, file);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new UsageError(`model path ${file} would lie outside the cache folder ${cache}`);
  return file;
}

/**
 * The one .gguf among `files` that names `quant` (case-insensitive). A name holding the tag between
 * non-alphanumerics ("-F16.", "-Q4_K_M.") beats one that merely contains it ("BF16" holds "F16");
 * none or several is an error listing them.
 */
export function pickQuant(files: string[], quant: string, repo: string): string {
  const ggufs = files.filter((f) => /\.gguf$/i.test(f));
  const q = quant.toLowerCase();
  const contains = ggufs.filter((f) => f.toLowerCase().includes(q));
  const tagged = contains.filter((f) => new RegExp(`(^|[^a-z0-9])${q.replace(/[.]/g, "\\.")}([^a-z0-9]|$)`).test(f.toLowerCase()));
  const hits = tagged.length > 0 ? tagged : contains;
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) throw new UsageError(`hf:${repo}: no .gguf file's name contains "${quant}" (its .gguf files: ${ggufs.join(", ") || "none"})`);
  throw new UsageError(`hf:${repo}: ${hits.length} .gguf files match "${quant}" (${hits.join(", ")}); name one as hf:${repo}/FILE.gguf`);
}

/** Every file under `dir` as a `/`-separated path relative to it (none if `dir` is missing). */
function listFiles(dir: string, prefix = ""): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(path.join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((d) => {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    return d.isDirectory() ? listFiles(dir, rel) : d.isFile() ? [rel] : [];
  });
}

export interface ResolveOptions {
  /** Default: defaultCacheDir(). */
  cacheDir?: string;
  /** Default: hubEndpoint() ($HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Sent as `Authorization: Bearer` to the hub only. Default: $HF_TOKEN. */
  token?: string;
  /** Give up a download after this long without a byte. Default: $PARALLELCOMP_DOWNLOAD_TIMEOUT seconds, else 30 s. */
  stallTimeoutMs?: number;
  onProgress?: (p: DownloadProgress) => void;
  /** One-line notices (waiting for another process that downloads the same file). */
  log?: (line: string) => void;
}

/** The download timeout from $PARALLELCOMP_DOWNLOAD_TIMEOUT (seconds), checked. */
function envStallMs(env: NodeJS.ProcessEnv): number {
  const raw = env.PARALLELCOMP_DOWNLOAD_TIMEOUT;
  if (raw === undefined || raw === "") return DEFAULT_STALL_SECONDS * 1000;
  const s = Number(raw);
  if (!(s > 0) || !Number.isFinite(s)) throw new UsageError(`PARALLELCOMP_DOWNLOAD_TIMEOUT: expected seconds > 0, got "${raw}"`);
  return s * 1000;
}

/**
 * A model reference as a local file: a path as given; a remote model's cache file, downloaded
 * first unless it is already there (then without any request). `hf:OWNER/REPO:QUANT` asks the hub
 * for the repo's files, unless exactly one cached file of that repo matches the tag.
 */
export async function resolveModel(ref: string, opts: ResolveOptions = {}): Promise<string> {
  const r = parseModelRef(ref);
  if (r.kind === "file") return r.path;
  const cache = path.resolve(opts.cacheDir ?? defaultCacheDir());
  const endpoint = opts.endpoint ? hubEndpoint({ HF_ENDPOINT: opts.endpoint }) : hubEndpoint();
  const http: HttpOptions = {
    token: opts.token ?? (process.env.HF_TOKEN || undefined),
    tokenOrigin: endpoint.origin,
    stallTimeoutMs: opts.stallTimeoutMs ?? envStallMs(process.env),
  };
  const download = (url: URL, dest: string) => downloadFile(url, dest, { ...http, onProgress: opts.onProgress, log: opts.log });
  if (r.kind === "url") return download(r.url, urlCachePath(cache, r.url));

  const repoDir = inside(cache, path.join(cache, "models", r.owner, r.repo));
  let file: string;
  if (r.kind === "hf") {
    file = r.file;
  } else {
    const cached = listFiles(repoDir).filter((f) => /\.gguf$/i.test(f));
    let local: string | null = null;
    try {
      local = pickQuant(cached, r.quant, `${r.owner}/${r.repo}`);
    } catch { /* none or several cached: ask the hub */ }
    if (local !== null) return path.join(repoDir, local);
    file = pickQuant(await listRepo(endpoint, r.owner, r.repo, http), r.quant, `${r.owner}/${r.repo}`);
  }
  if (!file.split("/").every(segmentOk)) throw new UsageError(`hf:${r.owner}/${r.repo}: the hub listed an unsafe file name "${file}"`);
  return download(hubUrl(endpoint, [r.owner, r.repo, "resolve", "main", file]), inside(cache, path.join(repoDir, ...file.split("/"))));
}

/** The repo's file names, from the hub's model API. */
async function listRepo(endpoint: URL, owner: string, repo: string, http: HttpOptions): Promise<string[]> {
  const url = hubUrl(endpoint, ["api", "models", owner, repo]);
  const j = (await getJson(url, http)) as { siblings?: Array<{ rfilename?: unknown }> };
  if (!Array.isArray(j?.siblings)) throw new Error(`${showUrl(url)}: the answer has no "siblings" list of files`);
  return j.siblings.map((s) => s?.rfilename).filter((f): f is string => typeof f === "string");
}
