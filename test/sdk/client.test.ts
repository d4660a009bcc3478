/**
 * Wire tests of the SDK client against a local HTTP server that answers contract-shaped
 * bodies (a stand-in for the broker, for the client's error mapping and retry rules;
 * the real broker is used in run-e2e.test.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createStagegateClient } from '../../sdk/client';
import { StagegateError } from '../../sdk/errors';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let server: Server;
let url: string;
let handler: Handler;
let seen: Array<{ method: string; path: string; auth: string | undefined; body: string }>;

const IDENTITY = 'identity-jwt-secret-value-123';
const STAGE_TOKEN = 'stage-token-secret-value-456';

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, path: req.url!, auth: req.headers.authorization, body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen = [];
});

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const opened = {
  stageId: 'st-1', stageToken: STAGE_TOKEN, build: 'acme/web/1/1', stage: 'deploy', phase: 'run', rule: 'r',
  expiresAt: '2030-01-01T00:00:00Z', maxExpiresAt: '2030-01-01T01:00:00Z', heartbeatSeconds: 30,
  credentials: [{ name: 'aws', provider: 'dev', kind: 'aws', expiresAt: '2030-01-01T00:00:00Z', revocation: 'deny-policy', values: { accessKeyId: 'AKIA-SECRET-VALUE-1' } }],
};

describe('createStagegateClient', () => {
  it('opens with the identity bearer and the contract body', async () => {
    handler = (_req, _b, res) => json(res, 201, opened);
    const client = createStagegateClient({ brokerUrl: `${url}/`, identityToken: async () => IDENTITY });
    const r = await client.openStage({ stage: 'deploy', artifacts: [{ digest: { sha256: 'a'.repeat(64) } }] });
    expect(r.stageToken).toBe(STAGE_TOKEN);
    expect(seen[0]).toMatchObject({ method: 'POST', path: '/v1/stages', auth: `Bearer ${IDENTITY}` });
    expect(JSON.parse(seen[0]!.body)).toEqual({ stage: 'deploy', phase: 'run', artifacts: [{ digest: { sha256: 'a'.repeat(64) } }] });
  });

  it.each([
    [403, 'POLICY_DENIED'],
    [403, 'PROVENANCE_FAILED'],
    [409, 'INSTALL_PHASE_OPEN'],
    [409, 'STAGE_ALREADY_RAN'],
    [401, 'UNAUTHENTICATED'],
  ] as const)('when the broker answers %i %s, the error has that code and its details', async (status, code) => {
    handler = (_req, _b, res) => json(res, status, { error: { code, message: `m ${code}`, details: { rule: 'r', claim: 'ref' } } });
    const client = createStagegateClient({ brokerUrl: url, identityToken: IDENTITY });
    const err = await client.openStage({ stage: 'deploy' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StagegateError);
    expect((err as StagegateError).code).toBe(code);
    expect((err as StagegateError).details).toEqual({ rule: 'r', claim: 'ref' });
    expect(seen).toHaveLength(1);
  });

  it('never retries open, even on 503', async () => {
    handler = (_req, _b, res) => json(res, 503, { error: { code: 'PROVIDER_UNAVAILABLE', message: 'x', details: {} } });
    const client = createStagegateClient({ brokerUrl: url, identityToken: IDENTITY });
    await expect(client.openStage({ stage: 'deploy' })).rejects.toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    expect(seen).toHaveLength(1);
  });

  it('retries close on 503 and succeeds; sends the exit code and the stage token', async () => {
    let n = 0;
    handler = (_req, _b, res) => {
      if (n++ < 2) return json(res, 503, { error: { code: 'BROKER_UNAVAILABLE', message: 'busy', details: {} } });
      json(res, 200, { stageId: 'st-1', state: 'closed', revoked: [{ name: 'aws', provider: 'dev', method: 'deny-policy', at: 'x', effectiveAt: 'x', state: 'revoked' }] });
    };
    const client = createStagegateClient({ brokerUrl: url });
    const r = await client.closeStage('st-1', STAGE_TOKEN, { exitCode: 3 });
    expect(r.revoked[0]!.method).toBe('deny-policy');
    expect(seen).toHaveLength(3);
    expect(seen[2]).toMatchObject({ method: 'DELETE', path: '/v1/stages/st-1', auth: `Bearer ${STAGE_TOKEN}` });
    expect(JSON.parse(seen[2]!.body)).toEqual({ exitCode: 3 });
  });

  it('does not retry a 4xx on an idempotent call', async () => {
    handler = (_req, _b, res) => json(res, 409, { error: { code: 'STAGE_CLOSED', message: 'closed', details: {} } });
    const client = createStagegateClient({ brokerUrl: url });
    await expect(client.heartbeat('st-1', STAGE_TOKEN)).rejects.toMatchObject({ code: 'STAGE_CLOSED' });
    expect(seen).toHaveLength(1);
  });

  it('maps an unreachable broker to BROKER_UNAVAILABLE, and a hung one to a timeout, with no token in the error', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((r) => dead.close(() => r()));
    const client = createStagegateClient({ brokerUrl: deadUrl, identityToken: IDENTITY, retries: 1 });
    const err = (await client.getStage('st-1', STAGE_TOKEN).catch((e: unknown) => e)) as StagegateError;
    expect(err.code).toBe('BROKER_UNAVAILABLE');
    expect(err.details.reason).toBe('ECONNREFUSED');

    handler = () => undefined; // never answers
    const slow = createStagegateClient({ brokerUrl: url, identityToken: IDENTITY, timeoutMs: 200 });
    const t = (await slow.openStage({ stage: 'deploy' }).catch((e: unknown) => e)) as StagegateError;
    expect(t.code).toBe('BROKER_UNAVAILABLE');
    expect(t.details.reason).toBe('timeout');
    for (const e of [err, t]) {
      const text = `${e.message} ${JSON.stringify(e.details)} ${String(e.stack)}`;
      expect(text).not.toContain(IDENTITY);
      expect(text).not.toContain(STAGE_TOKEN);
    }
  });

  it('rejects a malformed 2xx body by path only, and closes a stage it cannot read', async () => {
    const bad = { ...opened, heartbeatSeconds: 'soon', credentials: [{ ...opened.credentials[0], kind: 'weird' }] };
    handler = (req, _b, res) => (req.method === 'DELETE' ? json(res, 200, { stageId: 'st-1', state: 'closed', revoked: [] }) : json(res, 201, bad));
    const client = createStagegateClient({ brokerUrl: url, identityToken: IDENTITY });
    const err = (await client.openStage({ stage: 'deploy' }).catch((e: unknown) => e)) as StagegateError;
    expect(err.code).toBe('INTERNAL');
    expect(err.details.invalidPaths).toEqual(expect.arrayContaining(['heartbeatSeconds', 'credentials.0.kind']));
    expect(JSON.stringify(err.details) + err.message).not.toContain('AKIA-SECRET-VALUE-1');
    expect(seen.map((s) => s.method)).toEqual(['POST', 'DELETE']);
    expect(seen[1]!.auth).toBe(`Bearer ${STAGE_TOKEN}`);
  });

  it('turns a non-stagegate error body into a coded error by status', async () => {
    handler = (_req, _b, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
    const client = createStagegateClient({ brokerUrl: url, retries: 0 });
    await expect(client.getStage('st-1', STAGE_TOKEN)).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
  });

  it('refuses to open without an identity token, before any request', async () => {
    const client = createStagegateClient({ brokerUrl: url });
    await expect(client.openStage({ stage: 'deploy' })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(seen).toHaveLength(0);
    expect(() => createStagegateClient({ brokerUrl: 'http://user:pw@h' })).toThrow(TypeError);
  });
});
