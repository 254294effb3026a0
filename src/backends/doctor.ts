// What runs here: the native kernels, and each llama.cpp build this platform could use (installed
// or not, whether it loads, which devices it finds). A libllama stays open for the life of a
// process, so each build is probed in a child process of its own.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadNativeKernels } from "../kernels/native.js";
import { candidateBuilds, openLlamaCpp, type DeviceInfo } from "./llama-cpp.js";

const BIN = fileURLToPath(new URL("../../../bin/parallelcomp.js", import.meta.url));

export interface BackendReport {
  backend: "native" | "llama.cpp";
  build: string; // "kernels", or the llama.cpp build's device: cpu, cuda, vulkan, metal
  ok: boolean;
  detail: string; // what loaded, or why not
  devices?: DeviceInfo[];
}

/** Opens one libllama (in this process) and reports its devices: run by `doctor` in a child. */
export function probeLibllama(lib: string): { devices: DeviceInfo[] } | { error: string } {
  process.env.PARALLELCOMP_LIBLLAMA = lib;
  try {
    return { devices: openLlamaCpp().devices };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function backendReport(): { reports: BackendReport[]; auto: string } {
  const reports: BackendReport[] = [];
  const native = loadNativeKernels();
  reports.push("kernels" in native
    ? { backend: "native", build: "kernels", ok: true, detail: `C kernels, ${native.kernels.info().isa}, ${native.kernels.info().threads} threads` }
    : { backend: "native", build: "kernels", ok: true, detail: `TypeScript kernels (the C kernels: ${native.error})` });
  let gpu: string | null = null;
  for (const b of candidateBuilds()) {
    if ("missing" in b) {
      reports.push({ backend: "llama.cpp", build: b.device, ok: false, detail: b.device === "cpu" || b.pkg.startsWith("$") ? b.missing : `${b.missing} (npm i ${b.pkg}@3.21.1)` });
      continue;
    }
    const child = spawnSync(process.execPath, [BIN, "doctor", "--probe", b.lib], { encoding: "utf8", timeout: 60_000 });
    let r: { devices: DeviceInfo[] } | { error: string };
    try {
      r = JSON.parse(child.stdout);
    } catch {
      r = { error: `the probe exited with ${child.status ?? child.signal}: ${(child.stderr || "").trim().split("\n").pop()}` };
    }
    if ("error" in r) {
      reports.push({ backend: "llama.cpp", build: b.device, ok: false, detail: r.error });
      continue;
    }
    const gpus = r.devices.filter((d) => d.type === "gpu" || d.type === "igpu");
    const names = r.devices.map((d) => `${d.name} (${d.description})`).join(", ");
    if (b.device !== "cpu" && gpus.length === 0) {
      reports.push({ backend: "llama.cpp", build: b.device, ok: false, detail: `loads, but finds no ${b.device} device (only ${names})`, devices: r.devices });
      continue;
    }
    if (b.device !== "cpu") gpu ??= b.device;
    reports.push({ backend: "llama.cpp", build: b.device, ok: true, detail: `${b.lib}: ${names}`, devices: r.devices });
  }
  return { reports, auto: gpu ? `llama.cpp on ${gpu}` : "native (no GPU build of llama.cpp finds a device here)" };
}
