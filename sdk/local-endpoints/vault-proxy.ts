/**
 * A loopback Vault API proxy in the manner of Vault Agent's `use_auto_auth_token`: the
 * stage process gets `VAULT_ADDR=http://127.0.0.1:PORT` and a LOCAL token that is only
 * good at this proxy while the stage is open; the proxy swaps it for the stage's real
 * Vault token on the way upstream. So the real token is never in the stage's environment,
 * and a copied `VAULT_TOKEN` is worthless elsewhere and after the stage closes.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Credential } from '../client';
import { tokenMatches } from './aws-container-credentials';
import type { StageGate } from './stage-gate';

/** Every Vault API path starts here. */
export const VAULT_PROXY_PREFIX = '/v1/';

/** Headers never forwarded upstream: hop-by-hop ones and the caller's credentials. */
const DROP_REQUEST_HEADERS = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'x-vault-token', 'authorization', 'proxy-authorization',
]);
const DROP_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'trailer']);

export interface VaultProxyOptions {
  /** The stage's current `vault-token` credential (meta.vaultAddress is the upstream). */
  readonly credential: () => Credential | undefined;
  /** Extra CA certificates (PEM) for an https upstream (from `VAULT_CACERT`). */
  readonly ca?: string;
}

export interface VaultProxy {
  /** SECRET-ish: the token the stage process presents; useless off this host. */
  readonly localToken: string;
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: { gate: StageGate; isClosed: () => boolean; onRefused: (code: string, status: number) => void },
  ): Promise<void>;
}

/**
 * Create the proxy (it is mounted on the local endpoints' server).
 *
 * @example
 * ```ts
 * const proxy = createVaultProxy({ credential: () => vaultCredential });
 * // env: VAULT_ADDR = endpoints.origin, VAULT_TOKEN = proxy.localToken
 * ```
 */
export function createVaultProxy(options: VaultProxyOptions): VaultProxy {
  const localToken = `sgl.${randomBytes(32).toString('base64url')}`;
  const fail = (res: ServerResponse, status: number, message: string) => {
    const body = JSON.stringify({ errors: [message] });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  return {
    localToken,
    async handle(req, res, ctx) {
      const bearer = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
      const presented = typeof req.headers['x-vault-token'] === 'string' ? req.headers['x-vault-token'] : bearer;
      if (!tokenMatches(presented, localToken)) {
        ctx.onRefused('InvalidToken', 403);
        return fail(res, 403, 'permission denied');
      }
      const decision = await ctx.gate.check();
      if (!decision.open || ctx.isClosed()) {
        ctx.onRefused(decision.open ? 'StageClosed' : decision.code, 403);
        return fail(res, 403, 'permission denied: the stage is not open');
      }
      const c = options.credential();
      const upstreamBase = c?.meta?.vaultAddress;
      const realToken = c?.values.token;
      if (!c || !upstreamBase || !realToken) return fail(res, 502, 'no Vault credential with an address in this stage');
      const target = new URL(req.url ?? '/', upstreamBase.endsWith('/') ? upstreamBase : `${upstreamBase}/`);
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROP_REQUEST_HEADERS.has(k)) headers[k] = v;
      headers['x-vault-token'] = realToken;
      if (c.meta?.vaultNamespace && headers['x-vault-namespace'] === undefined) headers['x-vault-namespace'] = c.meta.vaultNamespace;
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      await new Promise<void>((resolve) => {
        const up = send(
          target,
          { method: req.method, headers, timeout: 30_000, ...(options.ca ? { ca: options.ca } : {}) },
          (upRes) => {
            const out: Record<string, string | string[]> = {};
            for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !DROP_RESPONSE_HEADERS.has(k)) out[k] = v;
            res.writeHead(upRes.statusCode ?? 502, out);
            upRes.pipe(res);
            upRes.on('end', resolve);
            upRes.on('error', () => resolve());
          },
        );
        up.on('timeout', () => up.destroy(new Error('timeout')));
        up.on('error', () => {
          // Only a fixed message: the upstream error may name hosts we should not echo.
          if (!res.headersSent) fail(res, 502, 'Vault upstream unreachable');
          else res.destroy();
          resolve();
        });
        req.pipe(up);
      });
    },
  };
}
