/**
 * The environment of the stage process: the caller's environment, minus whatever would
 * make a cloud SDK pick another credential first, plus where to find the stage's
 * credentials.
 *
 * `endpoint` (default): the credential endpoints and files; the only values in the
 * environment are the AWS endpoint URL, the path of its token file, `GCE_METADATA_HOST`,
 * and — for Vault — either the local proxy's token or the real token (see docs/cli.md).
 * `env`: the raw values as environment variables, for tools that read nothing else; the
 * CLI warns with the names it exposed.
 */
import type { Credential } from '../client';
import type { LocalEndpoints } from './server';
import type { StageFiles } from './stage-files';

export type DeliveryMode = 'endpoint' | 'env';

/** Variables removed so the AWS default chain reaches the stage's endpoint (or env keys). */
export const AWS_SHADOWING_VARS = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME',
] as const;

/** Variables removed so Google libraries reach the stage's metadata endpoint (or token). */
export const GCP_SHADOWING_VARS = [
  'GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_AUTH_ACCESS_TOKEN', 'GOOGLE_OAUTH_ACCESS_TOKEN',
  'CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'GCE_METADATA_ROOT',
] as const;

export interface StageEnvInput {
  /** The environment to start from (the CLI's own). */
  readonly baseEnv: Readonly<Record<string, string | undefined>>;
  readonly mode: DeliveryMode;
  readonly credentials: readonly Credential[];
  /** Required in `endpoint` mode. */
  readonly endpoints?: LocalEndpoints;
  /** Required when a credential is `secret` or in `endpoint` mode with an `aws` credential. */
  readonly files?: StageFiles;
}

export interface StageEnv {
  readonly env: Record<string, string>;
  /** Names of variables that hold secret values (env mode) — for the warning, never the values. */
  readonly exposed: readonly string[];
}

/** `STAGEGATE_SECRET_<GRANT>_<KEY>`, upper-cased, anything outside `[A-Z0-9_]` as `_`. */
export function secretEnvName(grant: string, key: string): string {
  return `STAGEGATE_SECRET_${grant}_${key}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/**
 * Build the stage process's environment.
 *
 * @example
 * ```ts
 * const { env, exposed } = buildStageEnv({ baseEnv: process.env, mode: 'endpoint', credentials, endpoints, files });
 * spawn(cmd, args, { env, stdio: 'inherit' });
 * ```
 */
export function buildStageEnv(input: StageEnvInput): StageEnv {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.baseEnv)) if (v !== undefined) env[k] = v;
  const exposed: string[] = [];
  const set = (k: string, v: string, secret = false) => {
    env[k] = v;
    if (secret) exposed.push(k);
  };
  const first = (kind: Credential['kind']) => input.credentials.find((c) => c.kind === kind);
  const aws = first('aws');
  const gcp = first('gcp-access-token');
  const vault = first('vault-token');
  const hasSecrets = input.credentials.some((c) => c.kind === 'secret');

  if (aws) {
    for (const k of AWS_SHADOWING_VARS) delete env[k];
    if (aws.meta?.region) {
      set('AWS_REGION', aws.meta.region);
      set('AWS_DEFAULT_REGION', aws.meta.region);
    }
    if (input.mode === 'env') {
      set('AWS_ACCESS_KEY_ID', aws.values.accessKeyId ?? '', true);
      set('AWS_SECRET_ACCESS_KEY', aws.values.secretAccessKey ?? '', true);
      set('AWS_SESSION_TOKEN', aws.values.sessionToken ?? '', true);
    } else {
      const endpoints = required(input.endpoints, 'endpoints');
      const files = required(input.files, 'files');
      set('AWS_CONTAINER_CREDENTIALS_FULL_URI', endpoints.awsUrl());
      // The token goes in a 0600 file rather than AWS_CONTAINER_AUTHORIZATION_TOKEN so
      // it is not copied into every descendant's environment (EKS Pod Identity does the
      // same; every current AWS SDK and CLI v2 read the _FILE form).
      set('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', files.writeAwsToken(endpoints.awsToken));
      // The default chain reads ~/.aws/credentials and ~/.aws/config (a [default] profile,
      // credential_process, SSO) BEFORE the container endpoint: point both at an empty
      // file, or a stray profile on the runner would silently replace the stage's
      // credentials. Region comes from the provider (AWS_REGION above) or the caller's env.
      const empty = files.writeEmptyAwsProfiles();
      set('AWS_SHARED_CREDENTIALS_FILE', empty);
      set('AWS_CONFIG_FILE', empty);
    }
  }
  if (gcp) {
    for (const k of GCP_SHADOWING_VARS) delete env[k];
    if (gcp.meta?.projectId) {
      set('GOOGLE_CLOUD_PROJECT', gcp.meta.projectId);
      set('CLOUDSDK_CORE_PROJECT', gcp.meta.projectId);
    }
    if (input.mode === 'env') {
      set('CLOUDSDK_AUTH_ACCESS_TOKEN', gcp.values.accessToken ?? '', true);
      set('GOOGLE_OAUTH_ACCESS_TOKEN', gcp.values.accessToken ?? '', true);
    } else {
      const endpoints = required(input.endpoints, 'endpoints');
      set('GCE_METADATA_HOST', endpoints.hostPort);
      set('GCE_METADATA_IP', endpoints.hostPort);
      set('GCE_METADATA_ROOT', endpoints.hostPort);
    }
  }
  if (vault) {
    delete env.VAULT_TOKEN;
    if (input.mode === 'endpoint' && input.endpoints?.vaultProxyToken && vault.meta?.vaultAddress) {
      set('VAULT_ADDR', input.endpoints.origin);
      set('VAULT_TOKEN', input.endpoints.vaultProxyToken);
      delete env.VAULT_NAMESPACE; // the proxy adds the stage's namespace upstream
    } else {
      if (vault.meta?.vaultAddress) set('VAULT_ADDR', vault.meta.vaultAddress);
      if (vault.meta?.vaultNamespace) set('VAULT_NAMESPACE', vault.meta.vaultNamespace);
      set('VAULT_TOKEN', vault.values.token ?? '', true);
    }
  }
  if (hasSecrets) {
    if (input.mode === 'env') {
      for (const c of input.credentials) {
        if (c.kind !== 'secret') continue;
        for (const [key, value] of Object.entries(c.values)) set(secretEnvName(c.name, key), value, true);
      }
    } else {
      set('STAGEGATE_SECRETS_DIR', required(input.files, 'files').writeSecrets(input.credentials));
    }
  }
  return { env, exposed };
}

function required<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new TypeError(`buildStageEnv: ${what} is required for this delivery`);
  return v;
}
