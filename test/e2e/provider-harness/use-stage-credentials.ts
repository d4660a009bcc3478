/**
 * What a stage process does with the credentials the broker handed it, through the real
 * client SDKs against the fakes: the test of "the credential works" and "the credential
 * is dead" is always a call the cloud would authorise or refuse, never a look at the
 * broker's own bookkeeping.
 */
import { AssumeRoleCommand, GetAccessKeyInfoCommand, STSClient } from '@aws-sdk/client-sts';
import nodeVault from 'node-vault';

export interface AwsValues {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
}

const stsFor = (endpoint: string, v: AwsValues) =>
  new STSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: v.accessKeyId, secretAccessKey: v.secretAccessKey, sessionToken: v.sessionToken }, maxAttempts: 1 });

/**
 * `sts:GetAccessKeyInfo` signed with the stage's credentials. Unlike GetCallerIdentity
 * (which AWS never lets a Deny block), it is policy-evaluated, so a per-stage deny shows.
 * Returns `ok` or the AWS error code (`AccessDenied`, `ExpiredToken`, …).
 */
export async function tryAwsCredential(endpoint: string, v: AwsValues): Promise<string> {
  const sts = stsFor(endpoint, v);
  try {
    await sts.send(new GetAccessKeyInfoCommand({ AccessKeyId: v.accessKeyId }));
    return 'ok';
  } catch (err) {
    return (err as Error).name;
  } finally {
    sts.destroy();
  }
}

/** Role chaining: `sts:AssumeRole` into another role with the stage's credentials. Returns `ok` or the AWS error code. */
export async function tryAwsRoleChain(endpoint: string, v: AwsValues, roleArn: string): Promise<string> {
  const sts = stsFor(endpoint, v);
  try {
    await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'chained', DurationSeconds: 900 }));
    return 'ok';
  } catch (err) {
    return (err as Error).name;
  } finally {
    sts.destroy();
  }
}

const vaultStatus = (err: unknown): number => (err as { response?: { statusCode?: number } }).response?.statusCode ?? -1;

/** `GET auth/token/lookup-self` with the stage's Vault token (node-vault). Returns `ok` or the HTTP status. */
export async function tryVaultToken(address: string, token: string): Promise<'ok' | number> {
  try {
    await nodeVault({ endpoint: address, token, requestOptions: { timeout: 2000 } }).tokenLookupSelf();
    return 'ok';
  } catch (err) {
    return vaultStatus(err);
  }
}

/** `GET <path>` (e.g. a KV v2 `secret/data/app/config`) with the stage's Vault token. Returns the data or the HTTP status. */
export async function tryVaultRead(address: string, token: string, path: string): Promise<Record<string, unknown> | number> {
  try {
    const res = (await nodeVault({ endpoint: address, token, requestOptions: { timeout: 2000 } }).read(path)) as { data: Record<string, unknown> };
    return res.data;
  } catch (err) {
    return vaultStatus(err);
  }
}
