// `parallelcomp doctor`: which backends and devices load here, and why the others do not.

import type { Command } from "commander";
import { backendReport, probeLibllama } from "../backends/doctor.js";

export function addDoctor(program: Command) {
  program
    .command("doctor")
    .description("which backends and devices load here (native kernels, llama.cpp's CPU / CUDA / Vulkan / Metal builds), and why the others do not")
    .option("--json", "print { reports: [{ backend, build, ok, detail, devices }], auto }")
    .option("--probe <libllama>", "(internal) open one libllama and print its devices as JSON")
    .action((o) => {
      if (o.probe) {
        console.log(JSON.stringify(probeLibllama(o.probe)));
        return;
      }
      const r = backendReport();
      if (o.json) {
        console.log(JSON.stringify(r));
        return;
      }
      for (const x of r.reports) console.log(`${x.backend.padEnd(9)} ${x.build.padEnd(7)} ${x.ok ? "ok " : "no "} ${x.detail}`);
      console.log(`--backend auto picks: ${r.auto}`);
    });
}
