/**
 * The demo server (examples/browser/static-server.ts, examples/browser/serve.ts) is a development server
 * for localhost: these are the refusals of issue 17's hardening pass, each as a regression test.
 */
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../examples/browser/static-server.ts';

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** One raw request (node's http client: any method, any Host header, the path sent as written). */
function request(server: StaticServer, urlPath: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: urlPath, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A short plain-text refusal: one line, no stack frames, no absolute paths. */
function expectCleanError(r: Reply, status: number, dirs: string[]): void {
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toMatch(/^text\/plain/);
  const body = r.body.toString('utf8');
  expect(body.trimEnd().split('\n')).toHaveLength(1);
  expect(body.length).toBeLessThan(400);
  expect(body).not.toMatch(/\bat .*:\d+:\d+|node:internal|Error:/);
  for (const d of dirs) expect(body).not.toContain(d);
}

describe('demo server: refusals', () => {
  let dir: string;
  let outside: string;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rwkvc-serve-'));
    outside = mkdtempSync(path.join(tmpdir(), 'rwkvc-outside-'));
    writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
    writeFileSync(path.join(dir, 'hello.txt'), 'hello');
    writeFileSync(path.join(dir, 'ok.ts'), 'export const x: number = 1;\n');
    writeFileSync(path.join(dir, 'bad.ts'), 'export const = ;\n');
    writeFileSync(path.join(dir, 'types.d.ts'), 'export declare const x: number;\n');
    mkdirSync(path.join(dir, '.git'));
    writeFileSync(path.join(dir, '.git', 'config'), '[core]');
    writeFileSync(path.join(dir, '.env'), 'TOKEN=1');
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'inside.txt'), 'inside');
    symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'leak.txt'));
    symlinkSync(outside, path.join(dir, 'leakdir'));
    symlinkSync(path.join(dir, 'sub', 'inside.txt'), path.join(dir, 'alias.txt')); // inside: still served
    server = await startStaticServer({ root: dir });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('serves a file, with nosniff and the cross-origin isolation headers', async () => {
    const r = await request(server, '/hello.txt');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(r.headers['cross-origin-embedder-policy']).toBe('require-corp');
    expect(r.headers['accept-ranges']).toBe('bytes');
    const ts = await request(server, '/ok.ts');
    expect(ts.status).toBe(200);
    expect(ts.body.toString()).toContain('export const x = 1');
  });

  it('does not follow a symlink that points outside the root (real paths compared)', async () => {
    for (const p of ['/leak.txt', '/leakdir/secret.txt']) {
      const r = await request(server, p);
      expect([403, 404]).toContain(r.status);
      expect(r.body.toString()).not.toContain('top secret');
      expectCleanError(r, r.status, [dir, outside]);
    }
    const inside = await request(server, '/alias.txt');
    expect(inside.status).toBe(200);
    expect(inside.body.toString()).toBe('inside');
  });

  it('answers malformed %-encoding with 400 and a short plain body', async () => {
    for (const p of ['/%', '/%E0%A4%A', '/%zz.txt', '/a%00b']) {
      expectCleanError(await request(server, p), 400, [dir, REPO_ROOT]);
    }
  });

  it('answers a .ts transpile error with 500 and one line, no stack or absolute path', async () => {
    for (const p of ['/bad.ts', '/types.d.ts']) {
      const r = await request(server, p);
      expectCleanError(r, 500, [dir, REPO_ROOT]);
      expect(r.body.toString()).toMatch(/^cannot transpile \//);
    }
  });

  it('does not serve .git or any dot-path segment (404)', async () => {
    for (const p of ['/.git/config', '/.git/', '/.env', '/%2egit/config', '/sub/%2e%2e/.env', '/sub%2f..%2f.env']) {
      const r = await request(server, p);
      expect(r.status, p).toBe(404);
      expect(r.body.toString()).not.toContain('[core]');
      expect(r.body.toString()).not.toContain('TOKEN');
    }
  });

  it('answers methods other than GET/HEAD with 405 and an Allow header', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await request(server, '/hello.txt', { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    const head = await request(server, '/hello.txt', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('5');
    expect(head.body.length).toBe(0);
  });

  it('checks the Host header (DNS rebinding): loopback names with the port only', async () => {
    for (const host of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, `[::1]:${server.port}`, `LOCALHOST:${server.port}`]) {
      expect((await request(server, '/hello.txt', { headers: { host } })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${server.port}`, 'evil.example', `localhost:${server.port + 1}`, 'localhost', `127.0.0.1.evil.example:${server.port}`, `192.168.1.10:${server.port}`]) {
      const r = await request(server, '/hello.txt', { headers: { host } });
      expect(r.status, host).toBe(403);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.body.toString()).not.toContain('hello\n');
    }
  });

  it('accepts the host it was explicitly started on', async () => {
    const s = await startStaticServer({ root: dir, host: '127.0.0.2', allowedHosts: ['demo.test'] });
    try {
      const get = (host: string) => new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.2', port: s.port, path: '/hello.txt', headers: { host }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        }).on('error', reject);
      });
      expect(await get(`127.0.0.2:${s.port}`)).toBe(200);
      expect(await get(`demo.test:${s.port}`)).toBe(200);
      expect(await get(`evil.example:${s.port}`)).toBe(403);
    } finally {
      await s.close();
    }
  });
});

describe('demo server: streaming and Range', () => {
  const fixture = path.join(REPO_ROOT, 'test/fixtures/finch-tiny/model.safetensors');
  let server: StaticServer;
  let big: string;
  const BIG = 50 * 1024 * 1024;

  beforeAll(async () => {
    server = await startStaticServer();
    big = mkdtempSync(path.join(tmpdir(), 'rwkvc-big-'));
    const fd = openSync(path.join(big, 'big.bin'), 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < BIG / chunk.length; i++) {
      chunk.fill(i & 0xff);
      writeSync(fd, chunk);
    }
    closeSync(fd);
  });
  afterAll(async () => {
    await server?.close();
    rmSync(big, { recursive: true, force: true });
  });

  it('answers Range: bytes=a-b with 206 and the exact bytes of the checkpoint', async () => {
    const bytes = readFileSync(fixture);
    const url = '/test/fixtures/finch-tiny/model.safetensors';
    const r = await request(server, url, { headers: { range: 'bytes=1000-4999' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-4999/${bytes.length}`);
    expect(r.headers['content-length']).toBe('4000');
    expect(Buffer.compare(r.body, bytes.subarray(1000, 5000))).toBe(0);

    const head8 = await request(server, url, { headers: { range: 'bytes=0-7' } });
    expect(Buffer.compare(head8.body, bytes.subarray(0, 8))).toBe(0);
    const tail = await request(server, url, { headers: { range: 'bytes=-100' } });
    expect(tail.status).toBe(206);
    expect(Buffer.compare(tail.body, bytes.subarray(bytes.length - 100))).toBe(0);
    const open = await request(server, url, { headers: { range: `bytes=${bytes.length - 10}-` } });
    expect(Buffer.compare(open.body, bytes.subarray(bytes.length - 10))).toBe(0);
    const past = await request(server, url, { headers: { range: `bytes=${bytes.length - 10}-${bytes.length + 1000}` } });
    expect(past.status).toBe(206);
    expect(past.body.length).toBe(10);

    for (const range of [`bytes=${bytes.length}-`, `bytes=${bytes.length + 5}-${bytes.length + 9}`, 'bytes=10-5', 'bytes=-0']) {
      const bad = await request(server, url, { headers: { range } });
      expect(bad.status, range).toBe(416);
      expect(bad.headers['content-range']).toBe(`bytes */${bytes.length}`);
    }
    const full = await request(server, url);
    expect(full.status).toBe(200);
    expect(Buffer.compare(full.body, bytes)).toBe(0);
  });

  it('streams: 8 concurrent full requests of a 50 MB file keep RSS growth small', async () => {
    const s = await startStaticServer({ root: big });
    try {
      const fetchCount = () => new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: s.port, path: '/big.bin', agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => { n += c.length; });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        }).on('error', reject);
      });
      await fetchCount(); // warm up (modules, buffers)
      global.gc?.();
      const before = process.memoryUsage().rss;
      let peak = before;
      const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
      const counts = await Promise.all(Array.from({ length: 8 }, fetchCount));
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      expect(counts).toEqual(Array(8).fill(BIG));
      expect(peak - before).toBeLessThan(100 * 1024 * 1024);
    } finally {
      await s.close();
    }
  });
});

describe('demo server: serve.ts command line', () => {
  const serve = path.join(REPO_ROOT, 'examples/browser/serve.ts');
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', serve, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });

  it.each(['--port abc', '--port 99999', '--port -1', '--port=-1', '--port 1.5', '--nope'])('serve %s: one line, exit 2', (args) => {
    const r = run(args.split(' '));
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^serve: /);
    expect(r.stderr).not.toMatch(/\bat .*:\d+:\d+/);
  });

  /** serve.ts's output up to its "open http://" line (the server is stopped after). */
  async function serveOutput(args: string[]): Promise<string> {
    const child = spawn(process.execPath, ['--import', 'tsx', serve, ...args, '--port', '0'], { cwd: REPO_ROOT });
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "open" line in time:\n${out}`)), 60_000);
        const take = (c: Buffer) => { out += c; if (/open http:\/\//.test(out)) { clearTimeout(t); resolve(); } };
        child.stdout.on('data', take);
        child.stderr.on('data', take);
        child.on('exit', (code) => { clearTimeout(t); reject(new Error(`exited ${code}:\n${out}`)); });
      });
      return out;
    } finally {
      child.kill('SIGTERM');
    }
  }

  it('--host 0.0.0.0 warns that the server is reachable from the network', async () => {
    expect(await serveOutput(['--host', '0.0.0.0'])).toMatch(/warning: .*reachable from the network/);
  });

  it('the default (127.0.0.1) prints no such warning', async () => {
    expect(await serveOutput([])).not.toMatch(/reachable from the network/);
  });
});
