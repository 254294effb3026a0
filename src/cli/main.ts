// The `parallelcomp` command line. Errors print one line, never a stack trace.

import { Command, CommanderError } from "commander";
import { addBench, addGenerate, addInspect, addTokenize } from "./commands.js";
import { addAsk } from "./ask.js";
import { addEval } from "./eval.js";
import { addDemo } from "./demo.js";
import { addServe } from "./serve.js";
import { addAttentionBias } from "./attention-bias.js";
import { addSweep } from "./sweep.js";
import { addDoctor } from "./doctor.js";
import { addPull } from "./pull.js";
import { UsageError } from "../errors.js";

const program = new Command();
program
  .name("parallelcomp")
  .description("ParallelComp: answer questions over inputs far longer than a model's trained window, on CPU, from GGUF models")
  .version("0.1.0")
  .showHelpAfterError("(add --help for usage)")
  .exitOverride();

addAsk(program);
addGenerate(program);
addEval(program);
addSweep(program);
addInspect(program);
addTokenize(program);
addBench(program);
addServe(program);
addDemo(program);
addAttentionBias(program);
addDoctor(program);
addPull(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  // Our errors name what was wrong; a JavaScript engine error (a TypeError, a RangeError) is a bug
  // of ours, said as such rather than passed off as advice.
  const internal = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;
  process.stderr.write(`parallelcomp: ${internal ? `internal error (${(e as Error).name}: ${(e as Error).message}); please report it` : (e as Error).message}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
}
