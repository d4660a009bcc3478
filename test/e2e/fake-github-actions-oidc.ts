/**
 * GitHub Actions' OIDC token request endpoint, as a step sees it through
 * `ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: `GET <url>&audience=X`
 * with `Authorization: Bearer <request token>` → `{ "value": "<JWT>" }`. The JWT is a
 * VALID identity token of the build, signed by the test's fake issuer — whoever holds the
 * request pair can mint one, which is the point of the attack it serves.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeOidcIssuer } from '../fakes/oidc-issuer';

export interface FakeGithubActionsOidc {
  /** Value for `ACTIONS_ID_TOKEN_REQUEST_URL` (already has a query string, as GitHub's does). */
  readonly requestUrl: string;
  /** SECRET: value for `ACTIONS_ID_TOKEN_REQUEST_TOKEN`. */
  readonly requestToken: string;
  readonly port: number;
  /** Every JWT minted, in order (SECRET). */
  readonly minted: string[];
  /** Requests refused (no or wrong bearer). */
  refused: number;
  env(): Record<string, string>;
  close(): Promise<void>;
}

/** Start the endpoint; each mint signs `claims` (one build) with a fresh `jti`. */
export async function startFakeGithubActionsOidc(issuer: FakeOidcIssuer, claims: Record<string, unknown>): Promise<FakeGithubActionsOidc> {
  const requestToken = `ghreq-${randomBytes(16).toString('hex')}`;
  const minted: string[] = [];
  const state = { refused: 0 };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/_apis/oidc/token' || req.headers.authorization !== `Bearer ${requestToken}`) {
        state.refused++;
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"Unauthorized"}');
        return;
      }
      const jwt = await issuer.sign(claims, { audience: url.searchParams.get('audience') ?? 'stagegate' });
      minted.push(jwt);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 1, value: jwt }));
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const requestUrl = `http://127.0.0.1:${port}/_apis/oidc/token?api-version=2.0`;
  return {
    requestUrl,
    requestToken,
    port,
    minted,
    get refused() {
      return state.refused;
    },
    set refused(v: number) {
      state.refused = v;
    },
    env: () => ({ ACTIONS_ID_TOKEN_REQUEST_URL: requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken }),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
