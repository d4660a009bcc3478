import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIdentityTokenSource, identityTokenSourcesFromEnv, resolveIdentityToken } from '../../sdk/identity-token';
import type { StagegateError } from '../../sdk/errors';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-id-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('identity token resolution', () => {
  it('prefers --identity-token-file over the env file, trims it, and re-reads it every time', async () => {
    const flagFile = join(dir, 'flag');
    const envFile = join(dir, 'env');
    writeFileSync(flagFile, '  jwt-from-flag-file\n');
    writeFileSync(envFile, 'jwt-from-env-file');
    const sources = identityTokenSourcesFromEnv({ STAGEGATE_IDENTITY_TOKEN_FILE: envFile, STAGEGATE_IDENTITY_TOKEN: 'jwt-env' }, { tokenFile: flagFile });
    const source = createIdentityTokenSource(sources);
    expect(await source()).toBe('jwt-from-flag-file');
    writeFileSync(flagFile, 'rotated-jwt\n'); // kubelet rotates projected tokens in place
    expect(await source()).toBe('rotated-jwt');
    expect(await resolveIdentityToken(identityTokenSourcesFromEnv({ STAGEGATE_IDENTITY_TOKEN_FILE: envFile, STAGEGATE_IDENTITY_TOKEN: 'jwt-env' }))).toBe('jwt-from-env-file');
  });

  it('uses STAGEGATE_IDENTITY_TOKEN, then GitLab STAGEGATE_ID_TOKEN', async () => {
    expect(await resolveIdentityToken(identityTokenSourcesFromEnv({ STAGEGATE_IDENTITY_TOKEN: 'jwt-env', STAGEGATE_ID_TOKEN: 'gl' }))).toBe('jwt-env');
    expect(await resolveIdentityToken(identityTokenSourcesFromEnv({ STAGEGATE_ID_TOKEN: 'gitlab-jwt' }))).toBe('gitlab-jwt');
  });

  it('names the file (not its content) when it is missing or empty', async () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    const e1 = (await resolveIdentityToken({ tokenFile: join(dir, 'nope'), tokenFileOrigin: '--identity-token-file' }).catch((e: unknown) => e)) as StagegateError;
    expect(e1.code).toBe('UNAUTHENTICATED');
    expect(e1.details).toMatchObject({ source: '--identity-token-file', reason: 'ENOENT' });
    const e2 = (await resolveIdentityToken({ tokenFile: empty }).catch((e: unknown) => e)) as StagegateError;
    expect(e2.message).toMatch(/empty/);
  });

  it('says which sources were tried when none is set', async () => {
    const err = (await resolveIdentityToken(identityTokenSourcesFromEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x' })).catch((e: unknown) => e)) as StagegateError;
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.details.tried).toEqual(expect.arrayContaining(['STAGEGATE_IDENTITY_TOKEN', 'STAGEGATE_ID_TOKEN', '--identity-token-file']));
  });

  describe('GitHub Actions', () => {
    let server: Server;
    let requestUrl: string;
    let seen: Array<{ url: string; auth?: string }>;
    let answer: { status: number; body: unknown };
    beforeAll(async () => {
      server = createServer((req, res) => {
        seen.push({ url: req.url!, auth: req.headers.authorization });
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      // The real request URL already carries a query (api-version); the audience is appended.
      requestUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_apis/token?api-version=2.0`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));
    beforeEach(() => {
      seen = [];
    });

    it('requests a token for the stagegate audience with the request token', async () => {
      answer = { status: 200, body: { value: 'gha-oidc-jwt', count: 1 } };
      const env = { ACTIONS_ID_TOKEN_REQUEST_URL: requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gha-request-token-secret' };
      expect(await resolveIdentityToken(identityTokenSourcesFromEnv(env))).toBe('gha-oidc-jwt');
      expect(seen[0]).toEqual({ url: '/_apis/token?api-version=2.0&audience=stagegate', auth: 'Bearer gha-request-token-secret' });
      await resolveIdentityToken(identityTokenSourcesFromEnv({ ...env, STAGEGATE_AUDIENCE: 'https://broker.example' }));
      expect(seen[1]!.url).toBe('/_apis/token?api-version=2.0&audience=https%3A%2F%2Fbroker.example');
    });

    it('reports a refusal by status, without the request token', async () => {
      answer = { status: 403, body: { message: 'no id-token permission' } };
      const env = { ACTIONS_ID_TOKEN_REQUEST_URL: requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gha-request-token-secret' };
      const err = (await resolveIdentityToken(identityTokenSourcesFromEnv(env)).catch((e: unknown) => e)) as StagegateError;
      expect(err.code).toBe('UNAUTHENTICATED');
      expect(err.details).toMatchObject({ status: 403 });
      expect(err.message + JSON.stringify(err.details)).not.toContain('gha-request-token-secret');
    });
  });
});
