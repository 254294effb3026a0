// Child process of the long-input benchmark (long.ts): argv[2] is a LongArgs JSON.
import { runLongChild, type LongArgs } from "./long.js";

process.stdout.write(JSON.stringify(runLongChild(JSON.parse(process.argv[2]) as LongArgs)) + "\n");
