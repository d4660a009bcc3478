/**
 * How the broker itself authenticates to Vault, per configured auth method. The secret
 * input (token, secret_id, JWT) is read from its file or environment variable at every
 * login, never cached beyond the call: kubelet and Vault Agent rotate these files, and a
 * re-login must see the new value.
 */
import { readFile } from 'node:fs/promises';
import { StagegateError } from '../../sdk/errors';
import type { VaultAuthConfig } from './vault-config';

/** Either a ready token (`token` method) or a login call to make. */
export type BrokerCredential =
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'login'; readonly path: string; readonly body: Readonly<Record<string, string>> };

/** Environment to read `*Env` names from; the provider's factory passes `process.env`. */
export type Environment = Readonly<Record<string, string | undefined>>;

async function fromFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new StagegateError('PROVIDER_UNAVAILABLE', `cannot read the Vault credential file${typeof code === 'string' ? ` (${code})` : ''}`, {
      details: { provider: 'vault', file: path },
    });
  }
  // Files written by editors and `echo` end in a newline that Vault would refuse.
  const value = text.trim();
  if (!value) throw new StagegateError('PROVIDER_UNAVAILABLE', 'the Vault credential file is empty', { details: { provider: 'vault', file: path } });
  return value;
}

function fromEnv(env: Environment, name: string): string {
  const value = env[name]?.trim();
  if (!value) {
    throw new StagegateError('PROVIDER_UNAVAILABLE', `environment variable ${name} is not set`, { details: { provider: 'vault', env: name } });
  }
  return value;
}

/** Read the broker's current Vault credential for the configured auth method. */
export async function readBrokerCredential(auth: VaultAuthConfig, env: Environment): Promise<BrokerCredential> {
  switch (auth.method) {
    case 'token':
      return { kind: 'token', token: auth.tokenFile !== undefined ? await fromFile(auth.tokenFile) : fromEnv(env, auth.tokenEnv!) };
    case 'approle': {
      const secretId = auth.secretIdFile !== undefined ? await fromFile(auth.secretIdFile) : fromEnv(env, auth.secretIdEnv!);
      return { kind: 'login', path: `auth/${auth.mount}/login`, body: { role_id: auth.roleId, secret_id: secretId } };
    }
    case 'jwt':
      return { kind: 'login', path: `auth/${auth.mount}/login`, body: { role: auth.role, jwt: await fromFile(auth.jwtFile) } };
    case 'kubernetes':
      return { kind: 'login', path: `auth/${auth.mount}/login`, body: { role: auth.role, jwt: await fromFile(auth.jwtFile) } };
  }
}
