/** `rwkvc serve`: an OpenAI-compatible HTTP server for one checkpoint (driver/serve/). */
import { basename } from 'node:path';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { count, int, targetOption, threads, weightsOption } from './args.ts';
import { UserError } from '../kernels/errors.ts';
import { load } from '../driver/load.ts';
import { DEFAULT_LIMITS } from '../driver/serve/limits.ts';
import type { WeightDType } from '../kernels/plan.ts';

export function serveCommand(): Command {
  return new Command('serve')
    .description('Serve a checkpoint over HTTP with the OpenAI API (/v1/completions, /v1/chat/completions, /v1/models, /health); concurrent requests are decoded together')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors)')
    .requiredOption('--vocab <file>', 'rwkv_vocab_v20230424.txt')
    .addOption(targetOption('wasm'))
    .addOption(weightsOption())
    .option('--threads <n>', 'worker threads (wasm; default all cores)', threads)
    .option('--name <id>', 'the model name clients ask for (default: the checkpoint file name without extension)')
    .option('--host <addr>', 'address to listen on (anything but loopback is reachable by others, with no authentication)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', int, 8080)
    .option('--max-batch <n>', 'most requests decoded in one batch step (compiled into the batch program)', count, 8)
    .option('--max-tokens <n>', 'most tokens a request may ask for (a chat request without max_tokens gets this)', count, DEFAULT_LIMITS.maxTokens)
    .option('--max-prompt-bytes <n>', 'largest prompt in UTF-8 bytes (413 beyond)', count, DEFAULT_LIMITS.maxPromptBytes)
    .option('--max-concurrent <n>', 'requests in flight at once (429 beyond)', count, DEFAULT_LIMITS.maxConcurrent)
    .option('--timeout-ms <n>', 'a request\'s time from arrival to its last token (504 beyond)', count, DEFAULT_LIMITS.timeoutMs)
    .addHelpText('after', `
Examples:
  rwkvc serve --model RWKV-x060-World-1B6.pth --vocab rwkv_vocab_v20230424.txt
  curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"RWKV-x060-World-1B6","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":true}'`)
    .action(async (o) => {
      if (o.port > 65535) throw new UserError(`--port: expected 0..65535, got ${o.port}`);
      const bar = new SingleBar({ format: '{phase} [{bar}] {value}/{total}', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
      let started = false;
      const session = await load(o.model, {
        target: o.target, weights: o.weights as WeightDType, threads: o.threads, vocab: o.vocab, batch: o.maxBatch,
        onProgress: (phase, done, total) => {
          if (!started) { bar.start(total, 0, { phase }); started = true; }
          bar.setTotal(total);
          bar.update(done, { phase });
        },
      });
      if (started) bar.stop();
      const modelId = o.name ?? basename(o.model).replace(/\.(pth|safetensors)$/i, '');
      const { createServer } = await import('../driver/serve/server.ts'); // fastify: only when serving
      const { app } = createServer({
        session, modelId, maxTokens: o.maxTokens, maxPromptBytes: o.maxPromptBytes, maxConcurrent: o.maxConcurrent, timeoutMs: o.timeoutMs,
      });
      let url: string;
      try {
        url = await app.listen({ host: o.host, port: o.port });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new UserError(`--host ${o.host} --port ${o.port}: cannot listen (${code ?? (e as Error).message})${code === 'EADDRINUSE' ? '; pick another --port' : ''}`);
      }
      if (!/^(127\.|::1$|localhost$)/.test(o.host))
        process.stderr.write(`rwkvc: warning: listening on ${o.host}: anyone who can reach this machine can use the model (there is no authentication)\n`);
      process.stderr.write(`rwkvc: serving '${modelId}' (${o.target}, ${o.weights}, batch ≤ ${o.maxBatch}) at ${url}/v1; Ctrl-C stops\n`);
      const stop = () => {
        // open streams get 3 s to finish, then the process ends anyway
        setTimeout(() => process.exit(0), 3000).unref();
        void app.close().then(() => { session.model.dispose(); process.exit(0); });
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
