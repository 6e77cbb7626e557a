/**
 * `rwkvc`: the command line. Each command lives in its own module; this file wires them to commander
 * and turns a UserError into one line on stderr and exit code 2 (anything else is a bug: stack trace).
 */
import { Command } from 'commander';
import { UserError } from '../runtime/errors.ts';
import { logitsCommand } from './logits.ts';
import { compileCommand } from './compile.ts';
import { inspectCommand } from './inspect.ts';
import { randomModelCommand } from './random-model.ts';
import { demoCommand } from './demo.ts';
import { benchCommand } from './bench.ts';
import { detokenizeCommand, runCommand, tokenizeCommand } from './text.ts';

const program = new Command()
  .name('rwkvc')
  .description('A compiler toolchain for RWKV-6 models: a TypeScript DSL compiled to WASM-SIMD, WGSL and CUDA kernels.')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

program.addCommand(demoCommand());
program.addCommand(compileCommand());
program.addCommand(inspectCommand());
program.addCommand(logitsCommand());
program.addCommand(benchCommand());
program.addCommand(randomModelCommand());
program.addCommand(runCommand());
program.addCommand(tokenizeCommand());
program.addCommand(detokenizeCommand());

process.on('unhandledRejection', (e) => report(e));

function report(e: unknown): never {
  if (e instanceof UserError) {
    process.stderr.write(`rwkvc: ${e.message}\n`);
    process.exit(e.exitCode);
  }
  console.error(e);
  process.exit(1);
}

try {
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  await program.parseAsync(process.argv);
} catch (e) {
  report(e);
}
