/**
 * Finding the workload identity token a build presents to the broker.
 *
 * Sources, first match wins:
 * 1. a token file (`--identity-token-file F`, else `STAGEGATE_IDENTITY_TOKEN_FILE`), re-read
 *    on every call (Kubernetes rotates projected tokens in place) and trimmed;
 * 2. `STAGEGATE_IDENTITY_TOKEN`;
 * 3. GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`,
 *    asked for audience `STAGEGATE_AUDIENCE` (default `stagegate`);
 * 4. GitLab CI: an `id_tokens:` variable, `STAGEGATE_ID_TOKEN` by convention.
 *
 * Errors name the sources that were tried, never a value.
 */
import { readFile } from 'node:fs/promises';
import { StagegateError } from './errors';

/** Audience asked of the CI's OIDC provider when none is configured. */
export const DEFAULT_AUDIENCE = 'stagegate';
/** Bound on the GitHub Actions token request, in milliseconds. */
export const GITHUB_TOKEN_TIMEOUT_MS = 10_000;

/** The identity sources that are configured; build it with {@link identityTokenSourcesFromEnv}. */
export interface IdentityTokenSources {
  /** Path of a file holding the token. */
  readonly tokenFile?: string;
  /** Where `tokenFile` came from, for messages (`--identity-token-file` or the env name). */
  readonly tokenFileOrigin?: string;
  /** SECRET: the token itself. */
  readonly token?: string;
  /** GitHub Actions' token request endpoint; `requestToken` is SECRET. */
  readonly githubActions?: { readonly requestUrl: string; readonly requestToken: string };
  /** SECRET: a GitLab `id_tokens` JWT. */
  readonly gitlabIdToken?: string;
  /** Audience for CI-minted tokens. Default {@link DEFAULT_AUDIENCE}. */
  readonly audience?: string;
}

/**
 * Map environment variables (and an optional `--identity-token-file` value) to sources.
 *
 * @example
 * ```ts
 * const sources = identityTokenSourcesFromEnv(process.env, { tokenFile: argv.identityTokenFile });
 * const token = await resolveIdentityToken(sources);
 * ```
 */
export function identityTokenSourcesFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  flags: { readonly tokenFile?: string } = {},
): IdentityTokenSources {
  const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  const tokenFile = nonEmpty(flags.tokenFile) ?? nonEmpty(env.STAGEGATE_IDENTITY_TOKEN_FILE);
  const requestUrl = nonEmpty(env.ACTIONS_ID_TOKEN_REQUEST_URL);
  const requestToken = nonEmpty(env.ACTIONS_ID_TOKEN_REQUEST_TOKEN);
  return {
    tokenFile,
    tokenFileOrigin: tokenFile === undefined ? undefined : nonEmpty(flags.tokenFile) ? '--identity-token-file' : 'STAGEGATE_IDENTITY_TOKEN_FILE',
    token: nonEmpty(env.STAGEGATE_IDENTITY_TOKEN),
    githubActions: requestUrl && requestToken ? { requestUrl, requestToken } : undefined,
    gitlabIdToken: nonEmpty(env.STAGEGATE_ID_TOKEN),
    audience: nonEmpty(env.STAGEGATE_AUDIENCE),
  };
}

/** The names of the sources, in the order they are tried (for error messages and docs). */
export const IDENTITY_SOURCE_NAMES = [
  '--identity-token-file',
  'STAGEGATE_IDENTITY_TOKEN_FILE',
  'STAGEGATE_IDENTITY_TOKEN',
  'ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'STAGEGATE_ID_TOKEN',
] as const;

/**
 * Resolve the identity token once from the first configured source.
 *
 * @example
 * ```ts
 * const jwt = await resolveIdentityToken({ tokenFile: '/var/run/secrets/stagegate/token' });
 * ```
 */
export async function resolveIdentityToken(
  sources: IdentityTokenSources,
  options: { readonly fetch?: typeof fetch; readonly timeoutMs?: number } = {},
): Promise<string> {
  if (sources.tokenFile !== undefined) {
    const origin = sources.tokenFileOrigin ?? 'token file';
    let text: string;
    try {
      text = await readFile(sources.tokenFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      throw new StagegateError('UNAUTHENTICATED', `cannot read the identity token file given by ${origin} (${code})`, {
        details: { source: origin, path: sources.tokenFile, reason: code },
      });
    }
    const token = text.trim();
    if (!token) {
      throw new StagegateError('UNAUTHENTICATED', `the identity token file given by ${origin} is empty`, {
        details: { source: origin, path: sources.tokenFile },
      });
    }
    return token;
  }
  if (sources.token !== undefined && sources.token.trim() !== '') return sources.token.trim();
  if (sources.githubActions) return requestGithubActionsToken(sources.githubActions, sources.audience ?? DEFAULT_AUDIENCE, options);
  if (sources.gitlabIdToken !== undefined && sources.gitlabIdToken.trim() !== '') return sources.gitlabIdToken.trim();
  throw new StagegateError(
    'UNAUTHENTICATED',
    `no identity token found; tried ${IDENTITY_SOURCE_NAMES.join(', ')} (set one, or run in GitHub Actions with "permissions: id-token: write", or in GitLab CI with an id_tokens entry named STAGEGATE_ID_TOKEN)`,
    { details: { tried: [...IDENTITY_SOURCE_NAMES] } },
  );
}

/**
 * A function that resolves a fresh token on every call (files are re-read, GitHub tokens
 * re-requested), for {@link createStagegateClient}'s `identityToken`.
 *
 * @example
 * ```ts
 * const client = createStagegateClient({
 *   brokerUrl,
 *   identityToken: createIdentityTokenSource(identityTokenSourcesFromEnv(process.env)),
 * });
 * ```
 */
export function createIdentityTokenSource(
  sources: IdentityTokenSources,
  options: { readonly fetch?: typeof fetch; readonly timeoutMs?: number } = {},
): () => Promise<string> {
  return () => resolveIdentityToken(sources, options);
}

async function requestGithubActionsToken(
  gh: { readonly requestUrl: string; readonly requestToken: string },
  audience: string,
  options: { readonly fetch?: typeof fetch; readonly timeoutMs?: number },
): Promise<string> {
  const source = 'ACTIONS_ID_TOKEN_REQUEST_URL';
  let url: URL;
  try {
    url = new URL(gh.requestUrl);
  } catch {
    throw new StagegateError('UNAUTHENTICATED', 'ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL', { details: { source } });
  }
  url.searchParams.set('audience', audience);
  let res: Response;
  let body: unknown;
  try {
    res = await (options.fetch ?? fetch)(url, {
      headers: { authorization: `Bearer ${gh.requestToken}`, accept: 'application/json; api-version=2.0' },
      signal: AbortSignal.timeout(options.timeoutMs ?? GITHUB_TOKEN_TIMEOUT_MS),
    });
    body = await res.json().catch(() => undefined);
  } catch (err) {
    const name = (err as { name?: unknown } | null)?.name;
    const reason = name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'unreachable';
    throw new StagegateError('UNAUTHENTICATED', `GitHub Actions OIDC token request failed (${reason})`, {
      details: { source, reason },
    });
  }
  if (!res.ok) {
    throw new StagegateError('UNAUTHENTICATED', `GitHub Actions OIDC token request answered HTTP ${res.status} (does the job have "permissions: id-token: write"?)`, {
      details: { source, status: res.status },
    });
  }
  const value = (body as { value?: unknown } | undefined)?.value;
  if (typeof value !== 'string' || value === '') {
    throw new StagegateError('UNAUTHENTICATED', 'GitHub Actions OIDC token response has no "value"', { details: { source } });
  }
  return value;
}
