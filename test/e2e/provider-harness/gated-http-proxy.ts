/**
 * A loopback HTTP proxy in front of a fake, whose gate a test can close: requests that
 * arrive while it is closed wait (really, on the wire) until it opens. Used to hold a
 * provider's cloud call in flight while something else happens at the broker (a close
 * during a refresh), without touching the provider or the fake.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatedHttpProxy {
  readonly host: string;
  readonly port: number;
  /** Requests that arrived while the gate was closed and still wait. */
  readonly waiting: number;
  /** From now on, hold requests. */
  close(): void;
  /** Forward every held request, and every later one at once. */
  open(): void;
  /** Resolves once `n` requests wait at the closed gate (bounded by `timeoutMs`). */
  waitForHeld(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startGatedHttpProxy(target: { host: string; port: number }): Promise<GatedHttpProxy> {
  let gateOpen = true;
  const held: Array<() => void> = [];
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const upstream = request({ host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
    });
    upstream.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const go = () => forward(req, res, Buffer.concat(chunks));
      if (gateOpen) go();
      else held.push(go);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    get waiting() {
      return held.length;
    },
    close() {
      gateOpen = false;
    },
    open() {
      gateOpen = true;
      for (const go of held.splice(0)) go();
    },
    async waitForHeld(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (held.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} held request(s)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
