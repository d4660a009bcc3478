/**
 * One loopback HTTP server (127.0.0.1, a free port) that serves a stage's credentials to
 * the stage process through protocols the cloud SDKs already speak:
 * - AWS container credentials at {@link AWS_CREDENTIALS_PATH} (token-authorised);
 * - GCE metadata under `/computeMetadata/` (authorised by the caller's process: it must
 *   be the stage command or a descendant, see process-tree.ts);
 * - optionally a Vault API proxy under `/v1/` (see vault-proxy.ts).
 * Every request first passes the stage gate (the broker says the stage is open and the
 * install phase is not). After `close()` the server stops listening and drops every
 * connection.
 *
 * Refusals are reported through `onRefused` with fixed reason codes: never a header value.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Credential } from '../client';
import { sendAwsCredentials, sendAwsError, tokenMatches } from './aws-container-credentials';
import { GCE_METADATA_PREFIX, checkMetadataRequest, sendMetadata, serveMetadata } from './gce-metadata';
import { createProcessTreeCheck, type LoopbackConnection } from './process-tree';
import type { StageGate } from './stage-gate';
import { createVaultProxy, VAULT_PROXY_PREFIX, type VaultProxy } from './vault-proxy';

/** Path of the AWS container-credentials endpoint (the first `aws` credential). */
export const AWS_CREDENTIALS_PATH = '/stagegate/aws-credentials';

/** A refused request, for the CLI's log: fixed codes only, no caller-supplied text. */
export interface RefusalEvent {
  readonly endpoint: 'aws' | 'gce' | 'vault' | 'other';
  readonly status: number;
  readonly code: string;
}

export interface LocalEndpointsOptions {
  /** The stage's credentials (SECRET values); replaced by name with `updateCredentials`. */
  readonly credentials: readonly Credential[];
  /** Asked before anything is served. */
  readonly gate: StageGate;
  /**
   * Serve GCE metadata to any local process when /proc cannot tell who is calling
   * (`--gce-allow-any-local`). Default false: fail closed.
   */
  readonly gceAllowAnyLocal?: boolean;
  /** procfs root for the caller check; default `/proc`. */
  readonly procRoot?: string;
  /** Proxy Vault (`VAULT_ADDR` → here; the real token is added upstream). Default false. */
  readonly vaultProxy?: boolean;
  /** Extra CA certificates (PEM) for the Vault proxy's https upstream. */
  readonly vaultCaCert?: string;
  /** Told about every refused request. */
  readonly onRefused?: (event: RefusalEvent) => void;
  /** Clock in epoch milliseconds (token `expires_in`); default `Date.now`. */
  readonly now?: () => number;
}

export interface LocalEndpoints {
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string;
  /** `127.0.0.1:PORT`, the form `GCE_METADATA_HOST` wants. */
  readonly hostPort: string;
  /** Full URI of the AWS endpoint for the first `aws` credential (or `name`'s). */
  awsUrl(name?: string): string;
  /** SECRET: the token the AWS endpoint requires in `Authorization`. */
  readonly awsToken: string;
  /** SECRET (worthless off this host): the token the Vault proxy accepts, if the proxy is on. */
  readonly vaultProxyToken: string | undefined;
  /** The stage command's pid: its process tree may use the GCE endpoint. */
  setStageProcess(pid: number): void;
  /** Replace credentials by name (heartbeat refreshes). */
  updateCredentials(credentials: readonly Credential[]): void;
  /** Stop serving: refuse in-flight work, stop listening, drop connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start the endpoints on 127.0.0.1, port 0.
 *
 * @example
 * ```ts
 * const endpoints = await startLocalCredentialEndpoints({
 *   credentials: opened.credentials,
 *   gate: createStageGate({ getStage: () => client.getStage(opened.stageId, opened.stageToken) }),
 * });
 * const child = spawn(cmd, args, { env: buildStageEnv({ … endpoints … }).env });
 * endpoints.setStageProcess(child.pid!);
 * ```
 */
export async function startLocalCredentialEndpoints(options: LocalEndpointsOptions): Promise<LocalEndpoints> {
  const creds = new Map<string, Credential>(options.credentials.map((c) => [c.name, c]));
  // 32 random bytes: unguessable, and base64url has no CR/LF (the SDK rejects "\r\n").
  const awsToken = randomBytes(32).toString('base64url');
  const now = options.now ?? Date.now;
  const checkTree = createProcessTreeCheck({ procRoot: options.procRoot });
  let stagePid: number | undefined;
  let closed = false;
  const refuse = (e: RefusalEvent) => options.onRefused?.(e);

  const firstOfKind = (kind: Credential['kind']) => [...creds.values()].find((c) => c.kind === kind);
  const vault: VaultProxy | undefined = options.vaultProxy
    ? createVaultProxy({ credential: () => firstOfKind('vault-token'), ca: options.vaultCaCert })
    : undefined;

  async function handleAws(req: IncomingMessage, res: ServerResponse, suffix: string): Promise<void> {
    if (req.method !== 'GET') return sendAwsError(res, 405, 'MethodNotAllowed', 'only GET is served');
    const auth = req.headers.authorization;
    if (auth === undefined || auth === '') {
      refuse({ endpoint: 'aws', status: 401, code: 'MissingToken' });
      return sendAwsError(res, 401, 'Unauthorized', 'authorization token required');
    }
    if (!tokenMatches(auth, awsToken)) {
      refuse({ endpoint: 'aws', status: 403, code: 'InvalidToken' });
      return sendAwsError(res, 403, 'AccessDenied', 'invalid authorization token');
    }
    const decision = await options.gate.check();
    if (!decision.open || closed) {
      const code = decision.open ? 'StageClosed' : decision.code;
      refuse({ endpoint: 'aws', status: 403, code });
      return sendAwsError(res, 403, code, 'the stage is not open for credentials');
    }
    const c = suffix === '' ? firstOfKind('aws') : creds.get(decodeURIComponent(suffix));
    if (!c || c.kind !== 'aws') return sendAwsError(res, 404, 'NotFound', 'no aws credential here');
    sendAwsCredentials(req, res, c);
  }

  async function handleGce(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const shape = checkMetadataRequest(req);
    if (!shape.ok) {
      refuse({ endpoint: 'gce', status: shape.status, code: 'BadMetadataRequest' });
      return sendMetadata(res, shape.status, shape.message);
    }
    if (!options.gceAllowAnyLocal) {
      if (stagePid === undefined) {
        refuse({ endpoint: 'gce', status: 403, code: 'NoStageProcess' });
        return sendMetadata(res, 403, 'Forbidden');
      }
      const verdict = await checkTree(req.socket as unknown as LoopbackConnection, stagePid);
      if (verdict !== 'allowed') {
        refuse({ endpoint: 'gce', status: 403, code: verdict === 'unavailable' ? 'CallerUnknown' : 'NotStageProcess' });
        return sendMetadata(res, 403, 'Forbidden');
      }
    }
    const decision = await options.gate.check();
    if (!decision.open || closed) {
      refuse({ endpoint: 'gce', status: 403, code: decision.open ? 'StageClosed' : decision.code });
      return sendMetadata(res, 403, 'Forbidden');
    }
    serveMetadata(req, res, firstOfKind('gcp-access-token'), now());
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (closed) {
      refuse({ endpoint: 'other', status: 503, code: 'StageClosed' });
      res.writeHead(503, { connection: 'close' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === AWS_CREDENTIALS_PATH || path.startsWith(`${AWS_CREDENTIALS_PATH}/`)) {
      return handleAws(req, res, path.slice(AWS_CREDENTIALS_PATH.length + 1));
    }
    if (path.startsWith(GCE_METADATA_PREFIX)) return handleGce(req, res);
    if (vault && path.startsWith(VAULT_PROXY_PREFIX)) {
      return vault.handle(req, res, {
        gate: options.gate,
        isClosed: () => closed,
        onRefused: (code, status) => refuse({ endpoint: 'vault', status, code }),
      });
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end();
    });
  });
  // Answer fast or not at all: AWS SDKs time out after 1 s and retry.
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    origin,
    hostPort: `127.0.0.1:${port}`,
    awsToken,
    vaultProxyToken: vault?.localToken,
    awsUrl(name) {
      return name === undefined ? `${origin}${AWS_CREDENTIALS_PATH}` : `${origin}${AWS_CREDENTIALS_PATH}/${encodeURIComponent(name)}`;
    },
    setStageProcess(pid) {
      stagePid = pid;
    },
    updateCredentials(fresh) {
      for (const c of fresh) creds.set(c.name, c);
    },
    async close() {
      if (closed) return;
      closed = true;
      options.gate.markClosed();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
