/**
 * The environment an install command gets: the parent's environment minus everything
 * that is, or leads to, a credential.
 *
 * Why so broad: `npm install` runs code written by strangers (lifecycle scripts of
 * every dependency) with the environment of the job. Cloud keys, CI tokens, the CI's
 * OIDC request URL/token (which mints an identity token for *this* build), agent
 * sockets and config files that point at credentials are all one `process.env` away.
 * Removing too much can break an install (the caller then keeps a name explicitly);
 * removing too little leaks a secret. So the default errs on removing.
 *
 * Pure: no I/O, no `process.env` read. Only names are ever reported, never values.
 */

/** Prefixes (compared case-insensitively) of whole families of credential variables. */
export const SCRUBBED_PREFIXES: readonly string[] = [
  'AWS_', // AWS keys, session tokens, container-credentials URI + authorization token, profiles
  'AMAZON_',
  'GOOGLE_', // GOOGLE_APPLICATION_CREDENTIALS (a key file path), GOOGLE_OAUTH_ACCESS_TOKEN, …
  'GCE_', // GCE_METADATA_HOST / _IP point at a metadata server that hands out tokens
  'GCLOUD_',
  'GCP_',
  'CLOUDSDK_', // gcloud auth config (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, …)
  'VAULT_', // VAULT_TOKEN, VAULT_ADDR of an agent proxy that adds a token
  'ACTIONS_', // ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN mint OIDC tokens; ACTIONS_RUNTIME_TOKEN
  'STAGEGATE_', // our own identity token (file), broker URL: install must not reach the broker
  'AZURE_', // AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, …
  'ARM_', // Terraform's Azure provider (ARM_CLIENT_SECRET, ARM_OIDC_TOKEN)
  'TF_VAR_', // Terraform input variables are routinely secrets
  'TF_TOKEN_', // Terraform registry/cloud tokens
  'KUBE_', // KUBE_TOKEN and friends
  'ALIBABA_CLOUD_',
  'ALICLOUD_',
  'OCI_CLI_',
  'DIGITALOCEAN_',
];

/** Exact names (case-insensitive) that are credentials or lead to one without matching a rule above. */
export const SCRUBBED_NAMES: readonly string[] = [
  'NPM_TOKEN',
  'NODE_AUTH_TOKEN',
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'CI_JOB_TOKEN',
  'CI_JOB_JWT',
  'CI_JOB_JWT_V1',
  'CI_JOB_JWT_V2',
  'KUBECONFIG', // a kubeconfig holds cluster credentials
  'SSH_AUTH_SOCK', // the agent signs for us: push to git, ssh to hosts
  'GPG_AGENT_INFO',
  'DOCKER_AUTH_CONFIG',
  'DOCKER_CONFIG', // directory holding config.json with registry auths
  'NETRC',
  'GIT_ASKPASS', // programs that hand out git/ssh credentials on request
  'SSH_ASKPASS',
  'GIT_CONFIG_PARAMETERS', // may carry http.extraheader=AUTHORIZATION: …
];

/**
 * Words that mark a name as secret wherever they appear. A name is split into words at
 * every non-alphanumeric character and at lower→upper case changes, so
 * `npm_config_//registry.npmjs.org/:_authToken` gives `…, AUTH, TOKEN` and
 * `CIRCLE_OIDC_TOKEN_V2` gives `…, TOKEN, V2`, but `GIT_AUTHOR_NAME` and `PWD` match nothing.
 */
export const SECRET_WORDS: readonly string[] = [
  'TOKEN',
  'TOKENS',
  'SECRET',
  'SECRETS',
  'PASSWORD',
  'PASSWORDS',
  'PASSWD',
  'PASSPHRASE',
  'CREDENTIAL',
  'CREDENTIALS',
  'CREDS',
  'JWT',
  'APIKEY',
  'AUTH', // npm's _auth, NODE_AUTH_TOKEN, SSH_AUTH_SOCK, BASIC_AUTH
  'AUTHTOKEN',
  'OIDC',
  'PRIVATEKEY',
];

/** Last words that mark a name as secret (`*_KEY`, `*_KEYS`): `STRIPE_KEY`, `SIGNING_KEY`. */
export const SECRET_LAST_WORDS: readonly string[] = ['KEY', 'KEYS'];

/** Result of {@link scrubEnvironment}. */
export interface ScrubbedEnvironment {
  /** The environment to hand to the install command (a new object). */
  readonly env: Record<string, string>;
  /** Names removed, sorted. Names only: values are never reported. */
  readonly removed: string[];
}

/** Why a name is removed, or `undefined` when it stays. Exported for the docs table test. */
export function secretReasonFor(name: string): string | undefined {
  const upper = name.toUpperCase();
  for (const prefix of SCRUBBED_PREFIXES) if (upper.startsWith(prefix)) return `prefix ${prefix}`;
  if (SCRUBBED_NAMES.includes(upper)) return 'name';
  const words = splitWords(name);
  for (const word of words) if (SECRET_WORDS.includes(word)) return `word ${word}`;
  const last = words[words.length - 1];
  if (last !== undefined && SECRET_LAST_WORDS.includes(last)) return `last word ${last}`;
  return undefined;
}

/**
 * Remove credential-bearing variables from `env`.
 *
 * @param env the parent environment (e.g. `process.env` of the CLI); `undefined` values are dropped.
 * @param keep names to keep even if a rule would remove them. An entry ending in `*` keeps
 *   every name with that prefix (`NPM_CONFIG_*`). Matching is exact (case-sensitive) as
 *   environment names are on Linux. Default: keep nothing.
 * @example
 * const { env, removed } = scrubEnvironment(process.env, ['NPM_TOKEN']);
 * // removed: ['AWS_SECRET_ACCESS_KEY', 'GITHUB_TOKEN', …] — names only
 */
export function scrubEnvironment(env: Readonly<Record<string, string | undefined>>, keep: readonly string[] = []): ScrubbedEnvironment {
  const out: Record<string, string> = {};
  const removed: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (!isKept(name, keep) && secretReasonFor(name) !== undefined) {
      removed.push(name);
      continue;
    }
    out[name] = value;
  }
  removed.sort();
  return { env: out, removed };
}

function isKept(name: string, keep: readonly string[]): boolean {
  for (const entry of keep) {
    if (entry.endsWith('*') ? name.startsWith(entry.slice(0, -1)) : name === entry) return true;
  }
  return false;
}

function splitWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0)
    .map((w) => w.toUpperCase());
}
