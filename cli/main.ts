/**
 * `rwkvc`: the command line. Each command lives in its own module; this file wires them to commander
 * and turns a UserError into one line on stderr and exit code 2 (anything else is a bug: stack trace).
 */
import { Command } from 'commander';
import { UserError } from '../kernels/errors.ts';
import { rwkvcVersion } from '../driver/version.ts';

/**
 * Every command, by name, in the order --help lists them. Each module is imported only when its command is
 * the one run (their imports are most of the start-up): the rest are loaded only for what lists or suggests
 * commands (--help, `help`, an unknown command).
 */
const COMMANDS: [string, () => Promise<Command>][] = [
  ['demo', async () => (await import('./demo.ts')).demoCommand()],
  ['compile', async () => (await import('./compile.ts')).compileCommand()],
  ['inspect', async () => (await import('./inspect.ts')).inspectCommand()],
  ['logits', async () => (await import('./logits.ts')).logitsCommand()],
  ['bench', async () => (await import('./bench.ts')).benchCommand()],
  ['random-model', async () => (await import('./random-model.ts')).randomModelCommand()],
  ['gguf', async () => (await import('./gguf.ts')).ggufCommand()],
  ['onnx', async () => (await import('./onnx.ts')).onnxCommand()],
  ['run', async () => (await import('./text.ts')).runCommand()],
  ['tokenize', async () => (await import('./text.ts')).tokenizeCommand()],
  ['detokenize', async () => (await import('./text.ts')).detokenizeCommand()],
  ['chat', async () => (await import('./chat.ts')).chatCommand()],
  ['serve', async () => (await import('./serve.ts')).serveCommand()],
];

const program = new Command()
  .name('rwkvc')
  .description('A compiler toolchain for RWKV-6 models: a TypeScript DSL compiled to WASM-SIMD and WGSL (WebGPU) kernels.')
  .version(rwkvcVersion(), '-V, --version', 'the rwkvc version')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) })
  .exitOverride(usageExit);

const asked = COMMANDS.find(([name]) => name === process.argv[2]);
for (const [, make] of asked ? [asked] : COMMANDS) program.addCommand(await make());

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
