/**
 * A transparent HTTP proxy in front of the broker that records every exchange (method,
 * path, status, error code, the requested phase) and can run a check *before* forwarding
 * a request — used to observe the world at the instant `stagegate install` asks to close
 * its install phase (is anything of the install still alive?). Bodies are not kept: they
 * carry tokens and credentials.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Exchange {
  readonly method: string;
  readonly path: string;
  /** `phase` of a `POST /v1/stages` body. */
  readonly phase?: string;
  readonly stage?: string;
  readonly status: number;
  /** `stageId` of a 201 answer. */
  readonly stageId?: string;
  /** stagegate error code of an error answer. */
  readonly code?: string;
  /** Whatever `beforeForward` returned for this request. */
  readonly observed?: unknown;
}

export interface RecordingProxy {
  readonly url: string;
  readonly port: number;
  readonly exchanges: Exchange[];
  close(): Promise<void>;
}

export interface RecordingProxyOptions {
  /** Called with the request before it is forwarded; its result is recorded as `observed`. */
  readonly beforeForward?: (req: { method: string; path: string }) => unknown;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startRecordingProxy(target: string, options: RecordingProxyOptions = {}): Promise<RecordingProxy> {
  const exchanges: Exchange[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const body = await readBody(req);
      let phase: string | undefined;
      let stage: string | undefined;
      if (method === 'POST' && path === '/v1/stages') {
        try {
          const parsed = JSON.parse(body.toString('utf8')) as { phase?: unknown; stage?: unknown };
          phase = typeof parsed.phase === 'string' ? parsed.phase : 'run';
          stage = typeof parsed.stage === 'string' ? parsed.stage : undefined;
        } catch {
          // not JSON: the broker will say so
        }
      }
      const observed = options.beforeForward?.({ method, path });
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
      let status = 502;
      let text = '';
      try {
        const r = await fetch(`${target}${path}`, {
          method,
          headers,
          body: method === 'GET' || method === 'HEAD' || body.length === 0 ? undefined : body,
          signal: AbortSignal.timeout(15_000),
        });
        status = r.status;
        text = await r.text();
        res.writeHead(status, { 'content-type': r.headers.get('content-type') ?? 'application/json' }).end(text);
      } catch {
        res.writeHead(502).end();
      }
      let stageId: string | undefined;
      let code: string | undefined;
      try {
        const parsed = JSON.parse(text) as { stageId?: unknown; error?: { code?: unknown } };
        if (typeof parsed.stageId === 'string' && status === 201) stageId = parsed.stageId;
        if (typeof parsed.error?.code === 'string') code = parsed.error.code;
      } catch {
        // no body
      }
      exchanges.push({ method, path, status, ...(phase ? { phase } : {}), ...(stage ? { stage } : {}), ...(stageId ? { stageId } : {}), ...(code ? { code } : {}), ...(observed !== undefined ? { observed } : {}) });
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    exchanges,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
