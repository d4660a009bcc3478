/**
 * Enough of the GCE metadata server for google-auth-library, gcloud and the Google client
 * libraries to take the stage's access token from `GCE_METADATA_HOST`:
 * - `GET /computeMetadata/v1/instance` (presence ping) and `/computeMetadata/v1/`;
 * - `GET /computeMetadata/v1/instance/service-accounts/` and `…/{default|EMAIL}/`
 *   (`?recursive=true` gives JSON);
 * - `GET …/service-accounts/{default|EMAIL}/token` → `{access_token, expires_in, token_type}`;
 * - `GET …/service-accounts/{default|EMAIL}/email` and `…/scopes`;
 * - `GET /computeMetadata/v1/project/project-id`.
 * Requests must carry `Metadata-Flavor: Google`; every answer carries it (clients check).
 * As the real server does, a request with `X-Forwarded-For` is refused (it came through a
 * proxy, i.e. maybe from somewhere else).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Credential } from '../client';

/** Path prefix of the metadata API. */
export const GCE_METADATA_PREFIX = '/computeMetadata/';

/** Write a metadata answer (always with `Metadata-Flavor: Google`). */
export function sendMetadata(res: ServerResponse, status: number, body: string, contentType = 'application/text'): void {
  res.writeHead(status, {
    'metadata-flavor': 'Google',
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** Does the request carry what the metadata protocol demands? */
export function checkMetadataRequest(req: IncomingMessage): { ok: true } | { ok: false; status: number; message: string } {
  if (req.method !== 'GET' && req.method !== 'HEAD') return { ok: false, status: 405, message: 'method not allowed' };
  if (req.headers['x-forwarded-for'] !== undefined) return { ok: false, status: 403, message: 'X-Forwarded-For is not allowed' };
  if (String(req.headers['metadata-flavor'] ?? '').toLowerCase() !== 'google') {
    return { ok: false, status: 403, message: 'Missing required header "Metadata-Flavor": "Google"' };
  }
  return { ok: true };
}

/**
 * Answer an authorised metadata request from the stage's `gcp-access-token` credential.
 *
 * @example
 * ```ts
 * if (checkMetadataRequest(req).ok && callerAllowed) serveMetadata(req, res, gcpCredential, Date.now());
 * ```
 */
export function serveMetadata(req: IncomingMessage, res: ServerResponse, c: Credential | undefined, nowMs: number): void {
  const url = new URL(req.url ?? '/', 'http://metadata');
  const path = url.pathname.replace(/\/{2,}/g, '/');
  const recursive = url.searchParams.get('recursive') === 'true';
  const email = c?.meta?.serviceAccountEmail ?? 'default';
  const projectId = c?.meta?.projectId;

  if (path === '/computeMetadata/v1/' || path === '/computeMetadata/v1') return sendMetadata(res, 200, 'instance/\nproject/\n');
  if (path === '/computeMetadata/v1/instance' || path === '/computeMetadata/v1/instance/') {
    return sendMetadata(res, 200, 'service-accounts/\n');
  }
  if (path === '/computeMetadata/v1/project/project-id') {
    return projectId ? sendMetadata(res, 200, projectId) : sendMetadata(res, 404, 'Not Found');
  }
  const sa = /^\/computeMetadata\/v1\/instance\/service-accounts\/?(?:([^/]+)\/?(.*))?$/.exec(path);
  if (!sa) return sendMetadata(res, 404, 'Not Found');
  if (!c) return sendMetadata(res, 404, 'Not Found');
  const [, account, leaf] = sa;
  if (account === undefined) {
    return recursive
      ? sendMetadata(res, 200, JSON.stringify({ default: accountInfo(c, email), [email]: accountInfo(c, email) }), 'application/json')
      : sendMetadata(res, 200, `default/\n${email}/\n`);
  }
  if (account !== 'default' && account !== email) return sendMetadata(res, 404, 'Not Found');
  switch (leaf ?? '') {
    case '':
      return recursive
        ? sendMetadata(res, 200, JSON.stringify(accountInfo(c, email)), 'application/json')
        : sendMetadata(res, 200, 'aliases\nemail\nscopes\ntoken\n');
    case 'email':
      return sendMetadata(res, 200, email);
    case 'aliases':
      return sendMetadata(res, 200, 'default');
    case 'scopes':
      return sendMetadata(res, 200, `${scopesOf(c).join('\n')}\n`);
    case 'token': {
      const expiresIn = Math.max(0, Math.floor((new Date(c.expiresAt).getTime() - nowMs) / 1000));
      const body = JSON.stringify({ access_token: c.values.accessToken ?? '', expires_in: expiresIn, token_type: 'Bearer' });
      return sendMetadata(res, 200, body, 'application/json');
    }
    default:
      return sendMetadata(res, 404, 'Not Found');
  }
}

function scopesOf(c: Credential): string[] {
  const s = c.meta?.scopes;
  return s ? s.split(/[\s,]+/).filter(Boolean) : ['https://www.googleapis.com/auth/cloud-platform'];
}

function accountInfo(c: Credential, email: string): Record<string, unknown> {
  return { aliases: ['default'], email, scopes: scopesOf(c) };
}
