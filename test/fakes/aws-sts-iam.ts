/**
 * A wire-faithful, stateful fake of AWS STS (Version 2011-06-15) and IAM (2010-05-08) on
 * one loopback port, speaking awsQuery exactly as ../../../shared/PROTOCOLS.md records:
 * form-encoded POST /, `Name.member.N` lists, XML bodies, `x-amzn-requestid`, real
 * error bodies (`<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`).
 *
 * What it checks, as AWS does:
 * - SigV4 on every call except AssumeRoleWithWebIdentity (unsupported here): re-signed
 *   with `@smithy/signature-v4` from the request's own headers and raw body, compared
 *   in constant time; unknown key → `InvalidClientTokenId`, bad signature →
 *   `SignatureDoesNotMatch`, session credentials need their exact `x-amz-security-token`.
 * - AssumeRole limits (names, durations, role max, chaining cap, session policy size
 *   and grammar, policy ARNs, tags, transitive keys, packed size), SourceIdentity only
 *   when the role's trust allows `sts:SetSourceIdentity`, tags only with `sts:TagSession`.
 * - Calls signed with issued session credentials: `ExpiredToken` after expiry; for every
 *   action except GetCallerIdentity an explicit Deny in the role's inline policies
 *   (evaluated for real: aws:SourceIdentity, aws:userid, aws:TokenIssueTime,
 *   aws:PrincipalTag/*) → `AccessDenied`; with an inline session policy only what it
 *   allows. GetCallerIdentity is never denied by policy — that is AWS's documented
 *   behaviour, and tests must not use it to prove a revocation.
 * - IAM inline policies: grammar (`MalformedPolicyDocument`), the 10,240-character
 *   aggregate per role, whitespace not counted (`LimitExceeded`), `NoSuchEntity`;
 *   GetRolePolicy returns the document URL-encoded, as IAM does.
 *
 * What it simplifies: the broker's own identity (keys added with `addAccessKey`) may call
 * everything; a role's trust trusts every known principal; managed policies (PolicyArns)
 * are not modelled (a session with PolicyArns is not narrowed); IAM writes are visible
 * immediately (real IAM is eventually consistent).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { deflateRawSync } from 'node:zlib';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { parseAuthorization, verifySigV4 } from './aws-sigv4-verify';
import { isAllowed, isExplicitlyDenied, validatePolicyDocument, type ConditionContext } from './aws-policy-eval';

const STS_VERSION = '2011-06-15';
const IAM_VERSION = '2010-05-08';
const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/';
const NAME = /^[\w+=,.@-]*$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+@-]+$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+@-]*$/u;
const ROLE_INLINE_LIMIT = 10_240;
/** Packed (compressed) budget of session policy + tags, bytes. AWS does not publish its number. */
const PACKED_BUDGET = 4096;

type Service = 'sts' | 'iam';

export interface FakeRoleOptions {
  /** Role `MaxSessionDuration`, seconds (default 3600). */
  readonly maxSessionDuration?: number;
  /** Trust policy allows `sts:SetSourceIdentity` (default true). */
  readonly trustAllowsSourceIdentity?: boolean;
  /** Trust policy allows `sts:TagSession` (default true). */
  readonly trustAllowsTagSession?: boolean;
}

export interface FakeSession {
  readonly accessKeyId: string;
  readonly roleName: string;
  readonly sessionName: string;
  readonly assumedRoleId: string;
  readonly sourceIdentity?: string;
  readonly tags: ReadonlyArray<{ Key: string; Value: string }>;
  readonly transitiveTagKeys: readonly string[];
  readonly sessionPolicy?: string;
  readonly policyArns: readonly string[];
  readonly issuedAt: Date;
  expiresAt: Date;
  /** Set when this session was assumed with another session's credentials. */
  readonly chainedFrom?: string;
}

interface SessionSecrets {
  readonly secretAccessKey: string;
  readonly sessionToken: string;
}

interface Role {
  readonly name: string;
  readonly id: string;
  readonly maxSessionDuration: number;
  readonly trustAllowsSourceIdentity: boolean;
  readonly trustAllowsTagSession: boolean;
  readonly policies: Map<string, string>;
  maxInlineChars: number;
}

export type OutageMode =
  | boolean
  | {
      /** HTTP status (default 503). */
      readonly status?: number;
      /** Error code (default `ServiceUnavailable`; `Throttling` with status 400 for throttling). */
      readonly code?: string;
      /** Only these services fail (default both). */
      readonly services?: readonly Service[];
      /** Only these actions fail (default all). */
      readonly actions?: readonly string[];
    };

export interface FakeAwsOptions {
  /** 12-digit account id used in ARNs (default 123456789012). */
  readonly accountId?: string;
}

export interface FakeCall {
  readonly service: Service | 'unknown';
  readonly action: string;
  readonly status: number;
  readonly code?: string;
}

export interface FakeAws {
  /** `http://127.0.0.1:PORT` — use as `endpoint` for both STS and IAM clients. */
  readonly url: string;
  readonly accountId: string;
  close(): Promise<void>;
  /** Create a role; returns its ARN. */
  createRole(name: string, options?: FakeRoleOptions): string;
  /** Register a long-term key (the broker's own identity, `AKIA…`). */
  addAccessKey(accessKeyId: string, secretAccessKey: string): void;
  /** The role's inline policies, name → decoded document. */
  rolePolicies(roleName: string): Record<string, string>;
  /** Aggregate inline policy size of the role as IAM counts it (whitespace excluded). */
  inlinePolicyChars(roleName: string): number;
  /** The largest aggregate size this role ever had. */
  maxInlinePolicyChars(roleName: string): number;
  /** Make calls fail (true: 503 ServiceUnavailable), or stop failing (false). */
  setOutage(mode: OutageMode): void;
  /** Calls received (all, or one action), including failed ones. */
  callCount(action?: string): number;
  readonly calls: readonly FakeCall[];
  /** Sessions issued so far (non-secret view). */
  sessions(): readonly FakeSession[];
  /** The fake's clock (wall clock + offset). SigV4 skew is still checked against the wall clock. */
  now(): Date;
  advanceClock(ms: number): void;
  /** Expire every issued session now. */
  expireAll(): void;
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
const isoSeconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const upperAlnum = (n: number): string => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return [...randomBytes(n)].map((b) => alphabet[b % 32]).join('');
};

class AwsFault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: 'Sender' | 'Receiver' = status >= 500 ? 'Receiver' : 'Sender',
  ) {
    super(message);
  }
}

const validation = (value: string, member: string, constraint: string): AwsFault =>
  new AwsFault(400, 'ValidationError', `1 validation error detected: Value '${value}' at '${member}' failed to satisfy constraint: ${constraint}`);

/** `Name.member.N` list → values (1-based, stops at the first gap), `Name=` → []. */
function memberList(params: URLSearchParams, name: string, suffix = ''): string[] {
  const out: string[] = [];
  for (let i = 1; ; i++) {
    const v = params.get(`${name}.member.${i}${suffix}`);
    if (v === null) break;
    out.push(v);
  }
  return out;
}

const policyChars = (doc: string): number => doc.replace(/\s/g, '').length;

/** Start the fake on 127.0.0.1 on a free port. */
export async function startFakeAws(options: FakeAwsOptions = {}): Promise<FakeAws> {
  const accountId = options.accountId ?? '123456789012';
  const roles = new Map<string, Role>();
  const userKeys = new Map<string, string>();
  const sessions = new Map<string, FakeSession>();
  const sessionSecrets = new Map<string, SessionSecrets>();
  const calls: FakeCall[] = [];
  let outage: OutageMode = false;
  let clockOffsetMs = 0;
  const now = (): Date => new Date(Date.now() + clockOffsetMs);

  const roleArn = (name: string): string => `arn:aws:iam::${accountId}:role/${name}`;
  const roleByArn = (arn: string): Role | undefined => {
    const m = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(arn);
    return m && m[1] === accountId ? roles.get(m[2]!) : undefined;
  };
  const aggregateChars = (role: Role): number => [...role.policies.values()].reduce((n, d) => n + policyChars(d), 0);
  const sessionArn = (s: FakeSession): string => `arn:aws:sts::${accountId}:assumed-role/${s.roleName}/${s.sessionName}`;

  type Principal = { kind: 'user'; accessKeyId: string } | { kind: 'session'; session: FakeSession };
  const principalArn = (p: Principal): string => (p.kind === 'user' ? `arn:aws:iam::${accountId}:user/stagegate-broker` : sessionArn(p.session));

  /** Authorization of a session principal: explicit Deny in the role's inline policies wins; a session policy narrows. */
  const authorize = (p: Principal, action: string, resource: string): void => {
    if (p.kind === 'user') return;
    const s = p.session;
    const role = roles.get(s.roleName);
    const ctx: Record<string, string | undefined> = {
      'aws:SourceIdentity': s.sourceIdentity,
      'aws:userid': s.assumedRoleId,
      'aws:TokenIssueTime': s.issuedAt.toISOString(),
      'aws:PrincipalArn': roleArn(s.roleName),
      'aws:CurrentTime': now().toISOString(),
    };
    for (const t of s.tags) ctx[`aws:PrincipalTag/${t.Key}`] = t.Value;
    const req = { action, resource, context: ctx as ConditionContext };
    const denied = role ? isExplicitlyDenied([...role.policies.values()], req) : true;
    if (denied) {
      throw new AwsFault(403, 'AccessDenied', `User: ${sessionArn(s)} is not authorized to perform: ${action} on resource: ${resource} with an explicit deny in an identity-based policy`);
    }
    if (s.sessionPolicy !== undefined && s.policyArns.length === 0 && !isAllowed([s.sessionPolicy], req)) {
      throw new AwsFault(403, 'AccessDenied', `User: ${sessionArn(s)} is not authorized to perform: ${action} on resource: ${resource} because no session policy allows the ${action} action`);
    }
  };

  const authenticate = async (req: IncomingMessage, body: string, service: Service): Promise<Principal> => {
    const header = req.headers.authorization;
    if (header === undefined) throw new AwsFault(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
    const auth = parseAuthorization(header);
    if (!auth) throw new AwsFault(400, 'IncompleteSignature', 'Authorization header requires \'Credential\', \'Signature\' and \'SignedHeaders\' parameters.');
    if (auth.service !== service) throw new AwsFault(403, 'SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'.`);
    let secret = userKeys.get(auth.accessKeyId);
    let principal: Principal | undefined = secret === undefined ? undefined : { kind: 'user', accessKeyId: auth.accessKeyId };
    if (secret === undefined) {
      const session = sessions.get(auth.accessKeyId);
      const secrets = sessionSecrets.get(auth.accessKeyId);
      const token = req.headers['x-amz-security-token'];
      if (!session || !secrets || typeof token !== 'string' || token !== secrets.sessionToken || !auth.signedHeaders.includes('x-amz-security-token')) {
        throw new AwsFault(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
      }
      secret = secrets.secretAccessKey;
      principal = { kind: 'session', session };
    }
    const failure = await verifySigV4({ method: req.method ?? 'POST', path: req.url ?? '/', headers: req.headers, body, auth, secretAccessKey: secret });
    if (failure === 'signature-expired') throw new AwsFault(403, 'SignatureDoesNotMatch', 'Signature expired: the request time is too far from the server time (15 min).');
    if (failure) {
      throw new AwsFault(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
    }
    if (principal!.kind === 'session' && now() >= principal!.session.expiresAt) {
      throw new AwsFault(403, 'ExpiredToken', 'The security token included in the request is expired');
    }
    return principal!;
  };

  // ---- STS ----------------------------------------------------------------------------

  const assumeRole = (p: Principal, params: URLSearchParams): string => {
    const arn = params.get('RoleArn') ?? '';
    const sessionName = params.get('RoleSessionName') ?? '';
    if (arn.length < 20 || arn.length > 2048) throw validation(arn, 'roleArn', 'Member must have length greater than or equal to 20');
    if (sessionName.length < 2 || sessionName.length > 64) throw validation(sessionName, 'roleSessionName', 'Member must have length less than or equal to 64');
    if (!NAME.test(sessionName)) throw validation(sessionName, 'roleSessionName', 'Member must satisfy regular expression pattern: [\\w+=,.@-]*');
    const sourceIdentity = params.get('SourceIdentity') ?? undefined;
    if (sourceIdentity !== undefined) {
      if (sourceIdentity.length < 2 || sourceIdentity.length > 64) throw validation(sourceIdentity, 'sourceIdentity', 'Member must have length less than or equal to 64');
      if (!NAME.test(sourceIdentity)) throw validation(sourceIdentity, 'sourceIdentity', 'Member must satisfy regular expression pattern: [\\w+=,.@-]*');
    }
    const durationText = params.get('DurationSeconds');
    const duration = durationText === null ? 3600 : Number(durationText);
    if (!Number.isInteger(duration) || duration < 900) throw validation(String(durationText), 'durationSeconds', 'Member must have value greater than or equal to 900');
    if (duration > 43_200) throw validation(String(durationText), 'durationSeconds', 'Member must have value less than or equal to 43200');
    const policy = params.get('Policy') ?? undefined;
    if (policy !== undefined) {
      if (policy.length > 2048) throw validation('…', 'policy', 'Member must have length less than or equal to 2048');
      const bad = validatePolicyDocument(policy);
      if (bad) throw new AwsFault(400, 'MalformedPolicyDocument', bad);
    }
    const policyArns = memberList(params, 'PolicyArns', '.arn');
    if (policyArns.length > 10) throw validation('[…]', 'policyArns', 'Member must have length less than or equal to 10');
    for (const a of policyArns) if (!/^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/.+$/.test(a)) throw new AwsFault(400, 'InvalidParameterValue', `Invalid ARN: ${a}`);
    const keys = memberList(params, 'Tags', '.Key');
    const tags = keys.map((Key, i) => ({ Key, Value: params.get(`Tags.member.${i + 1}.Value`) ?? '' }));
    if (tags.length > 50) throw validation('[…]', 'tags', 'Member must have length less than or equal to 50');
    for (const t of tags) {
      if (t.Key.length < 1 || t.Key.length > 128 || !TAG_KEY.test(t.Key)) throw validation(t.Key, 'tags.member.key', 'Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+ and have length 1-128');
      if (t.Value.length > 256 || !TAG_VALUE.test(t.Value)) throw validation(t.Value, 'tags.member.value', 'Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]* and have length less than or equal to 256');
    }
    if (new Set(tags.map((t) => t.Key.toLowerCase())).size !== tags.length) {
      throw new AwsFault(400, 'InvalidParameterValue', 'Duplicate tag keys found. Please note that Tag keys are case insensitive.');
    }
    const transitive = memberList(params, 'TransitiveTagKeys');
    if (transitive.length > 50) throw validation('[…]', 'transitiveTagKeys', 'Member must have length less than or equal to 50');
    for (const k of transitive) {
      if (!tags.some((t) => t.Key.toLowerCase() === k.toLowerCase())) throw new AwsFault(400, 'InvalidParameterValue', 'The specified transitive tag key must be included in the requested tags.');
    }
    const packed = deflateRawSync(Buffer.from(JSON.stringify([policy ?? '', policyArns, tags]))).length;
    const packedPercent = Math.ceil((packed / PACKED_BUDGET) * 100);
    if (packedPercent > 100) throw new AwsFault(400, 'PackedPolicyTooLarge', `Packed policy consumes ${packedPercent}% of allotted space, please use smaller policy.`);

    const role = roleByArn(arn);
    if (!role) throw new AwsFault(403, 'AccessDenied', `User: ${principalArn(p)} is not authorized to perform: sts:AssumeRole on resource: ${arn}`);
    // Role chaining: the caller's own deny/narrowing applies to the AssumeRole call itself.
    authorize(p, 'sts:AssumeRole', arn);
    const chained = p.kind === 'session' ? p.session : undefined;
    let effectiveSourceIdentity = sourceIdentity;
    if (chained?.sourceIdentity !== undefined) {
      // SourceIdentity is sticky through role chaining: the holder cannot shed or change it.
      if (sourceIdentity !== undefined && sourceIdentity !== chained.sourceIdentity) {
        throw new AwsFault(403, 'AccessDenied', `User: ${principalArn(p)} is not authorized to perform: sts:SetSourceIdentity on resource: ${arn}`);
      }
      effectiveSourceIdentity = chained.sourceIdentity;
    }
    if (sourceIdentity !== undefined && !role.trustAllowsSourceIdentity) {
      throw new AwsFault(403, 'AccessDenied', `User: ${principalArn(p)} is not authorized to perform: sts:SetSourceIdentity on resource: ${arn}`);
    }
    if (tags.length > 0 && !role.trustAllowsTagSession) {
      throw new AwsFault(403, 'AccessDenied', `User: ${principalArn(p)} is not authorized to perform: sts:TagSession on resource: ${arn}`);
    }
    if (duration > role.maxSessionDuration) throw new AwsFault(400, 'ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
    if (chained && duration > 3600) throw new AwsFault(400, 'ValidationError', 'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.');

    const inheritedTags = chained ? chained.tags.filter((t) => chained.transitiveTagKeys.includes(t.Key)) : [];
    const issuedAt = now();
    const accessKeyId = `ASIA${upperAlnum(16)}`;
    const secrets: SessionSecrets = {
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: `IQoJb3JpZ2luX2Vj${randomBytes(280).toString('base64')}`,
    };
    const session: FakeSession = {
      accessKeyId,
      roleName: role.name,
      sessionName,
      assumedRoleId: `${role.id}:${sessionName}`,
      ...(effectiveSourceIdentity !== undefined ? { sourceIdentity: effectiveSourceIdentity } : {}),
      tags: [...inheritedTags, ...tags],
      transitiveTagKeys: [...(chained?.transitiveTagKeys ?? []), ...transitive],
      ...(policy !== undefined ? { sessionPolicy: policy } : {}),
      policyArns,
      issuedAt,
      expiresAt: new Date(issuedAt.getTime() + duration * 1000),
      ...(chained ? { chainedFrom: chained.accessKeyId } : {}),
    };
    sessions.set(accessKeyId, session);
    sessionSecrets.set(accessKeyId, secrets);
    return (
      `<AssumeRoleResult>` +
      (session.sourceIdentity !== undefined ? `<SourceIdentity>${xmlEscape(session.sourceIdentity)}</SourceIdentity>` : '') +
      `<AssumedRoleUser><AssumedRoleId>${xmlEscape(session.assumedRoleId)}</AssumedRoleId><Arn>${xmlEscape(sessionArn(session))}</Arn></AssumedRoleUser>` +
      `<Credentials><AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>${xmlEscape(secrets.secretAccessKey)}</SecretAccessKey>` +
      `<SessionToken>${xmlEscape(secrets.sessionToken)}</SessionToken><Expiration>${isoSeconds(session.expiresAt)}</Expiration></Credentials>` +
      `<PackedPolicySize>${packedPercent}</PackedPolicySize>` +
      `</AssumeRoleResult>`
    );
  };

  const getCallerIdentity = (p: Principal): string => {
    // Deliberately no authorize(): AWS documents that an explicit Deny cannot block GetCallerIdentity.
    const userId = p.kind === 'user' ? 'AIDA' + 'STAGEGATEBROKER01' : p.session.assumedRoleId;
    return `<GetCallerIdentityResult><Arn>${xmlEscape(principalArn(p))}</Arn><UserId>${xmlEscape(userId)}</UserId><Account>${accountId}</Account></GetCallerIdentityResult>`;
  };

  const getAccessKeyInfo = (p: Principal, params: URLSearchParams): string => {
    authorize(p, 'sts:GetAccessKeyInfo', '*');
    const keyId = params.get('AccessKeyId') ?? '';
    if (keyId.length < 16 || keyId.length > 128) throw validation(keyId, 'accessKeyId', 'Member must have length greater than or equal to 16');
    return `<GetAccessKeyInfoResult><Account>${accountId}</Account></GetAccessKeyInfoResult>`;
  };

  // ---- IAM ----------------------------------------------------------------------------

  const iamRole = (params: URLSearchParams): Role => {
    const name = params.get('RoleName') ?? '';
    if (name.length < 1 || name.length > 64 || !NAME.test(name)) throw validation(name, 'roleName', 'Member must satisfy regular expression pattern: [\\w+=,.@-]+');
    const role = roles.get(name);
    if (!role) throw new AwsFault(404, 'NoSuchEntity', `The role with name ${name} cannot be found.`);
    return role;
  };
  const policyName = (params: URLSearchParams): string => {
    const name = params.get('PolicyName') ?? '';
    if (name.length < 1 || name.length > 128 || !NAME.test(name)) throw validation(name, 'policyName', 'Member must satisfy regular expression pattern: [\\w+=,.@-]+');
    return name;
  };

  const putRolePolicy = (p: Principal, params: URLSearchParams): string => {
    const role = iamRole(params);
    authorize(p, 'iam:PutRolePolicy', roleArn(role.name));
    const name = policyName(params);
    const doc = params.get('PolicyDocument') ?? '';
    if (doc.length < 1 || doc.length > 131_072) throw validation('…', 'policyDocument', 'Member must have length less than or equal to 131072');
    const bad = validatePolicyDocument(doc);
    if (bad) throw new AwsFault(400, 'MalformedPolicyDocument', bad);
    const others = [...role.policies].filter(([n]) => n !== name).reduce((n, [, d]) => n + policyChars(d), 0);
    if (others + policyChars(doc) > ROLE_INLINE_LIMIT) {
      throw new AwsFault(409, 'LimitExceeded', `Maximum policy size of ${ROLE_INLINE_LIMIT} bytes exceeded for role ${role.name}`);
    }
    role.policies.set(name, doc);
    role.maxInlineChars = Math.max(role.maxInlineChars, aggregateChars(role));
    return '';
  };

  const getRolePolicy = (p: Principal, params: URLSearchParams): string => {
    const role = iamRole(params);
    authorize(p, 'iam:GetRolePolicy', roleArn(role.name));
    const name = policyName(params);
    const doc = role.policies.get(name);
    if (doc === undefined) throw new AwsFault(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    // IAM returns the document URL-encoded (RFC 3986); the SDK hands it over as is.
    return `<GetRolePolicyResult><PolicyName>${xmlEscape(name)}</PolicyName><RoleName>${xmlEscape(role.name)}</RoleName><PolicyDocument>${xmlEscape(encodeURIComponent(doc))}</PolicyDocument></GetRolePolicyResult>`;
  };

  const deleteRolePolicy = (p: Principal, params: URLSearchParams): string => {
    const role = iamRole(params);
    authorize(p, 'iam:DeleteRolePolicy', roleArn(role.name));
    const name = policyName(params);
    if (!role.policies.delete(name)) throw new AwsFault(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    return '';
  };

  const listRolePolicies = (p: Principal, params: URLSearchParams): string => {
    const role = iamRole(params);
    authorize(p, 'iam:ListRolePolicies', roleArn(role.name));
    const members = [...role.policies.keys()].sort().map((n) => `<member>${xmlEscape(n)}</member>`).join('');
    return `<ListRolePoliciesResult><IsTruncated>false</IsTruncated><PolicyNames>${members}</PolicyNames></ListRolePoliciesResult>`;
  };

  type Handler = (p: Principal, params: URLSearchParams) => string;
  const handlers: Record<Service, Record<string, Handler>> = {
    sts: { AssumeRole: assumeRole, GetCallerIdentity: getCallerIdentity, GetAccessKeyInfo: getAccessKeyInfo },
    iam: { PutRolePolicy: putRolePolicy, GetRolePolicy: getRolePolicy, DeleteRolePolicy: deleteRolePolicy, ListRolePolicies: listRolePolicies },
  };

  const outageFor = (service: Service, action: string): AwsFault | undefined => {
    if (outage === false) return undefined;
    const o = outage === true ? {} : outage;
    if (o.services && !o.services.includes(service)) return undefined;
    if (o.actions && !o.actions.includes(action)) return undefined;
    const status = o.status ?? 503;
    const code = o.code ?? 'ServiceUnavailable';
    return new AwsFault(status, code, code === 'Throttling' ? 'Rate exceeded' : 'Service is unavailable. Please try again later.');
  };

  const send = (res: ServerResponse, status: number, xml: string, requestId: string): void => {
    res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId, 'content-length': Buffer.byteLength(xml) });
    res.end(xml);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 1_048_576) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const params = new URLSearchParams(body);
    const action = params.get('Action') ?? '';
    const version = params.get('Version') ?? '';
    const service: Service | undefined = version === STS_VERSION ? 'sts' : version === IAM_VERSION ? 'iam' : undefined;
    const ns = service === 'iam' ? IAM_NS : STS_NS;
    try {
      if (req.method !== 'POST' || !String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        throw new AwsFault(400, 'InvalidAction', 'Only form-encoded POST requests are supported by this fake.');
      }
      const handler = service ? handlers[service][action] : undefined;
      if (!service || !handler) throw new AwsFault(400, 'InvalidAction', `Could not find operation ${action} for version ${version}`);
      const down = outageFor(service, action);
      if (down) throw down;
      const principal = await authenticate(req, body, service);
      const result = handler(principal, params);
      calls.push({ service, action, status: 200 });
      send(res, 200, `<${action}Response xmlns="${ns}">${result}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`, requestId);
    } catch (err) {
      const fault = err instanceof AwsFault ? err : new AwsFault(500, 'InternalFailure', 'We encountered an internal error. Please try again.');
      calls.push({ service: service ?? 'unknown', action, status: fault.status, code: fault.code });
      send(
        res,
        fault.status,
        `<ErrorResponse xmlns="${ns}"><Error><Type>${fault.type}</Type><Code>${xmlEscape(fault.code)}</Code><Message>${xmlEscape(fault.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
        requestId,
      );
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    accountId,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
    createRole(name, opts = {}) {
      if (!/^[\w+=,.@-]{1,64}$/.test(name)) throw new TypeError(`fake AWS: bad role name ${name}`);
      roles.set(name, {
        name,
        id: `AROA${upperAlnum(17)}`,
        maxSessionDuration: opts.maxSessionDuration ?? 3600,
        trustAllowsSourceIdentity: opts.trustAllowsSourceIdentity ?? true,
        trustAllowsTagSession: opts.trustAllowsTagSession ?? true,
        policies: new Map(),
        maxInlineChars: 0,
      });
      return roleArn(name);
    },
    addAccessKey(id, secret) {
      userKeys.set(id, secret);
    },
    rolePolicies(name) {
      return Object.fromEntries(roles.get(name)?.policies ?? []);
    },
    inlinePolicyChars(name) {
      const role = roles.get(name);
      return role ? aggregateChars(role) : 0;
    },
    maxInlinePolicyChars(name) {
      return roles.get(name)?.maxInlineChars ?? 0;
    },
    setOutage(mode) {
      outage = mode;
    },
    callCount(action) {
      return action === undefined ? calls.length : calls.filter((c) => c.action === action).length;
    },
    calls,
    sessions() {
      return [...sessions.values()];
    },
    now,
    advanceClock(ms) {
      clockOffsetMs += ms;
    },
    expireAll() {
      const t = now();
      for (const s of sessions.values()) if (s.expiresAt > t) s.expiresAt = new Date(t.getTime() - 1);
    },
  };
}
