/** Pure deny-list logic and stage → STS name derivation, table-driven. */
import {
  addDeny,
  bucketFor,
  collectGarbage,
  countDenies,
  fitDenyList,
  findDeny,
  mergeDenyLists,
  parseDenyList,
  policySize,
  renderDenyList,
  deriveSessionName,
  deriveSessionTags,
  deriveSourceIdentity,
  sanitizeTagValue,
  reduceAwsError,
} from '../../providers/aws-sts';
import { EMPTY_DENY_LIST, DenyListFormatError } from '../../providers/aws-sts/deny-list';
import { validatePolicyDocument, isExplicitlyDenied } from '../fakes/aws-policy-eval';

const STS_NAME = /^[\w+=,.@-]{2,64}$/;

describe('deny list', () => {
  it('adds, finds and renders compact, IAM-valid JSON that round-trips', () => {
    let list = addDeny(EMPTY_DENY_LIST, 'sg-a', 1800);
    list = addDeny(list, 'sg-b', 1800);
    list = addDeny(list, 'sg-c', 2700);
    const doc = renderDenyList(list)!;
    expect(doc).not.toMatch(/\s/);
    expect(validatePolicyDocument(doc)).toBeUndefined();
    expect(parseDenyList(doc)).toEqual(list);
    expect(JSON.parse(doc).Statement.map((s: { Sid: string }) => s.Sid)).toEqual(['SgGc1800', 'SgGc2700']);
    const ctx = (id: string) => ({ action: 'sts:GetAccessKeyInfo', resource: '*', context: { 'aws:SourceIdentity': id } });
    expect(isExplicitlyDenied([doc], ctx('sg-b'))).toBe(true);
    expect(isExplicitlyDenied([doc], ctx('sg-d'))).toBe(false);
  });

  it('is idempotent and never shortens a deny', () => {
    const list = addDeny(EMPTY_DENY_LIST, 'sg-a', 2700);
    expect(addDeny(list, 'sg-a', 2700)).toBe(list);
    expect(addDeny(list, 'sg-a', 900)).toBe(list);
    const later = addDeny(list, 'sg-a', 3600);
    expect(findDeny(later, 'sg-a')).toBe(3600);
    expect(countDenies(later)).toBe(1);
  });

  it('collects only buckets whose time has passed', () => {
    const list = addDeny(addDeny(EMPTY_DENY_LIST, 'sg-old', 900), 'sg-new', 1800);
    expect(collectGarbage(list, 899)).toBe(list);
    expect(findDeny(collectGarbage(list, 900), 'sg-old')).toBeUndefined();
    expect(findDeny(collectGarbage(list, 900), 'sg-new')).toBe(1800);
    expect(renderDenyList(collectGarbage(list, 1800))).toBeUndefined();
  });

  it('rounds buckets up, never down', () => {
    expect(bucketFor(901, 900)).toBe(1800);
    expect(bucketFor(900, 900)).toBe(900);
  });

  it('fits a budget by merging early buckets into later ones, never dropping an id', () => {
    let list = EMPTY_DENY_LIST;
    for (let i = 0; i < 20; i++) list = addDeny(list, `sg-${i}`, 900 * (i + 1));
    const fitted = fitDenyList(list, 1000)!;
    expect(policySize(renderDenyList(fitted))).toBeLessThanOrEqual(1000);
    expect(countDenies(fitted)).toBe(20);
    for (let i = 0; i < 20; i++) expect(findDeny(fitted, `sg-${i}`)).toBeGreaterThanOrEqual(900 * (i + 1));
    let huge = EMPTY_DENY_LIST;
    for (let i = 0; i < 100; i++) huge = addDeny(huge, `sg-${'x'.repeat(30)}-${i}`, 900);
    expect(fitDenyList(huge, 1000)).toBeUndefined();
  });

  it('keeps foreign statements and unions stale reads with recent writes', () => {
    const foreign = { Sid: 'Mine', Effect: 'Deny', Action: 's3:*', Resource: '*' };
    const parsed = parseDenyList(JSON.stringify({ Version: '2012-10-17', Statement: [foreign] }));
    expect(parsed.foreign).toEqual([foreign]);
    const merged = mergeDenyLists(parsed, addDeny(EMPTY_DENY_LIST, 'sg-a', 900));
    expect(JSON.parse(renderDenyList(merged)!).Statement[0]).toEqual(foreign);
    expect(findDeny(merged, 'sg-a')).toBe(900);
  });

  it.each(['{', '[]', '{"Statement":[1]}'])('refuses to parse %s instead of overwriting it', (doc) => {
    expect(() => parseDenyList(doc)).toThrow(DenyListFormatError);
  });
});

describe('stage → STS names and tags', () => {
  it.each([
    ['deploy', 'abc-123'],
    ['デプロイ', 'abc-123'],
    ['x'.repeat(500), 'a'.repeat(40)],
    ['', 'a'],
    ['a b/c;d', '0123456789-0123456789-0123456789-0123456'],
  ])('derives valid, bounded names for stage %j id %j', (stageName, stageId) => {
    const session = deriveSessionName(stageName, stageId);
    const source = deriveSourceIdentity(stageId);
    expect(session).toMatch(STS_NAME);
    expect(source).toMatch(STS_NAME);
    expect(session.endsWith(`.${stageId}`)).toBe(true);
    expect(source).toBe(`sg-${stageId}`);
  });

  it('hashes a stage id outside [a-z0-9-]{1,40} into a valid, distinct identity', () => {
    const a = deriveSourceIdentity('A'.repeat(80));
    const b = deriveSourceIdentity(`${'A'.repeat(79)}B`);
    expect(a).toMatch(STS_NAME);
    expect(a).not.toBe(b);
  });

  it('sanitises and truncates tag values without splitting surrogate pairs', () => {
    expect(sanitizeTagValue('a;b')).toBe('a_b');
    expect(sanitizeTagValue('ü'.repeat(300))).toHaveLength(256);
    const emoji = sanitizeTagValue('😀'.repeat(200));
    expect(emoji.length).toBeLessThanOrEqual(256);
    expect(emoji).not.toMatch(/[\uD800-\uDBFF]$/);
  });

  it('sets stagegate tags first so a claim or static tag cannot override them', () => {
    const tags = deriveSessionTags(
      { build: 'b', stage: 's', rule: 'r', stageId: 'id', claims: { repo: 'acme/web', n: 7 } },
      { repo: 'Repo', n: 'STAGEGATE:BUILD' },
      { repo: 'static' },
    );
    expect(tags).toEqual([
      { Key: 'stagegate:build', Value: 'b' },
      { Key: 'stagegate:stage', Value: 's' },
      { Key: 'stagegate:rule', Value: 'r' },
      { Key: 'stagegate:stage-id', Value: 'id' },
      { Key: 'Repo', Value: 'acme/web' },
    ]);
  });
});

describe('reduceAwsError', () => {
  it.each([
    [{ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } }, 'PROVIDER_UNAVAILABLE'],
    [{ name: 'Throttling', $metadata: { httpStatusCode: 400 } }, 'PROVIDER_UNAVAILABLE'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'PROVIDER_UNAVAILABLE'],
    [{ name: 'AccessDenied', $metadata: { httpStatusCode: 403 }, message: 'User: arn:aws:sts::123456789012:assumed-role/x is not authorized' }, 'PROVIDER_REJECTED'],
    [{ name: 'ValidationError', $metadata: { httpStatusCode: 400 } }, 'PROVIDER_REJECTED'],
  ])('maps %j to %s, keeping only the code', (err, code) => {
    const e = reduceAwsError(err, 'sts:AssumeRole');
    expect(e.code).toBe(code);
    expect(e.message).toMatch(/^aws sts:AssumeRole failed: [A-Za-z]+$/);
    expect(JSON.stringify(e)).not.toContain('123456789012');
    expect(e.cause).toBeUndefined();
  });

  it('never copies an unsafe name into the message', () => {
    const e = reduceAwsError({ name: 'arn:aws:iam::123456789012:role/x', $metadata: { httpStatusCode: 400 } }, 'op');
    expect(e.message).toBe('aws op failed: UnknownError');
  });
});
