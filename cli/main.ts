/**
 * `rwkvc`: the command line. Each command lives in its own module; this file wires them to commander
 * and turns a UserError into one line on stderr and exit code 2 (anything else is a bug: stack trace).
 */
import { Command } from 'commander';
import { UserError } from '../kernels/errors.ts';
import { rwkvcVersion } from '../driver/version.ts';
import { logitsCommand } from './logits.ts';
import { compileCommand } from './compile.ts';
import { inspectCommand } from './inspect.ts';
import { randomModelCommand } from './random-model.ts';
import { demoCommand } from './demo.ts';
import { benchCommand } from './bench.ts';
import { ggufCommand } from './gguf.ts';
import { onnxCommand } from './onnx.ts';
import { detokenizeCommand, runCommand, tokenizeCommand } from './text.ts';
import { chatCommand } from './chat.ts';
import { serveCommand } from './serve.ts';

const program = new Command()
  .name('rwkvc')
  .description('A compiler toolchain for RWKV-6 models: a TypeScript DSL compiled to WASM-SIMD and WGSL (WebGPU) kernels.')
  .version(rwkvcVersion(), '-V, --version', 'the rwkvc version')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) })
  .exitOverride(usageExit);

program.addCommand(demoCommand());
program.addCommand(compileCommand());
program.addCommand(inspectCommand());
program.addCommand(logitsCommand());
program.addCommand(benchCommand());
program.addCommand(randomModelCommand());
program.addCommand(ggufCommand());
program.addCommand(onnxCommand());
program.addCommand(runCommand());
program.addCommand(tokenizeCommand());
program.addCommand(detokenizeCommand());
program.addCommand(chatCommand());
program.addCommand(serveCommand());

// commands made with `new Command` do not inherit the parent's settings
for (const c of program.commands) c.exitOverride(usageExit);

process.on('unhandledRejection', (e) => report(e));

/** Usage errors (unknown option, bad choice) exit 2 like every other bad input; help exits 0. */
function usageExit(err: { exitCode: number }): never {
  process.exit(err.exitCode === 0 ? 0 : 2);
}

/**
 * One line and the exit code for a UserError; a stack trace and exit 1 for anything else. The process
 * exits only once stderr has taken the whole line: through a pipe, `process.exit` right after `write`
 * would cut a long line short (stderr pipes are asynchronous on POSIX).
 */
function report(e: unknown): void {
  const code = e instanceof UserError ? e.exitCode : 1;
  process.exitCode = code;
  if (e instanceof UserError) process.stderr.write(`rwkvc: ${e.message}\n`);
  else console.error(e);
  // Write callbacks run in order: this one once everything before it has been handed to the OS.
  process.stderr.write('', () => process.exit(code));
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  report(e);
}
