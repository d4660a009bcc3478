import { createPublicKey, createHmac, generateKeyPairSync } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import { buildClaims, call, startTestBroker, type TestBroker } from '../harness/broker';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ configure: (c) => void (c.issuers[0].jwksCooldownSeconds = 1) });
});
afterAll(async () => {
  await tb.close();
});

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function payloadFor(claims: Record<string, unknown>): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { ...claims, iss: tb.issuer.issuer, aud: 'stagegate', iat: now, nbf: now, exp: now + 300 };
}

async function openWith(token: string) {
  return call(tb.url, 'POST', '/v1/stages', { token, body: { stage: 'deploy' } });
}

describe('identity token attacks are refused with 401 and nothing is issued', () => {
  const cases: Array<[string, () => Promise<string>, string]> = [
    ['alg: none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payloadFor(buildClaims()))}.`, 'algorithm'],
    [
      'HS256 signed with the issuer public key as the secret',
      async () => {
        const pub = createPublicKey({ key: tb.issuer.publicJwk as any, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
        const head = `${b64({ alg: 'HS256', typ: 'JWT', kid: tb.issuer.kid })}.${b64(payloadFor(buildClaims()))}`;
        return `${head}.${createHmac('sha256', pub).update(head).digest('base64url')}`;
      },
      'algorithm',
    ],
    ['unknown kid', async () => tb.mintToken(buildClaims(), { kid: 'no-such-key' }), 'unknown-key'],
    [
      'signed by a key the issuer never published',
      async () => {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const key = await importJWK(privateKey.export({ format: 'jwk' }) as any, 'ES256');
        return tb.mintToken(buildClaims(), { key: key as any });
      },
      'signature',
    ],
    ['expired', async () => tb.mintToken(buildClaims(), { expiresIn: -120 }), 'expired'],
    ['not yet valid', async () => tb.mintToken(buildClaims(), { notBefore: 600, expiresIn: 900 }), 'not-yet-valid'],
    ['wrong audience', async () => tb.mintToken(buildClaims(), { audience: 'someone-else' }), 'audience'],
    ['wrong issuer', async () => tb.mintToken(buildClaims(), { issuer: 'https://evil.example' }), 'unknown-issuer'],
    [
      'tampered payload',
      async () => {
        const [h, , s] = (await tb.mintToken(buildClaims({ repository: 'acme/other' }))).split('.');
        return `${h}.${b64(payloadFor(buildClaims()))}.${s}`;
      },
      'signature',
    ],
    ['oversized token', async () => tb.mintToken(buildClaims({ padding: 'x'.repeat(9_000) })), 'too-large'],
    ['garbage', async () => 'not.a.jwt', 'malformed'],
    ['empty bearer', async () => '', 'missing'],
    ['lacks a build-key claim', async () => tb.mintToken(buildClaims({ run_id: undefined })), 'claim-missing'],
  ];

  it.each(cases)('%s', async (_name, make, reason) => {
    const before = await tb.broker.store.counts();
    const auditBefore = (await tb.broker.store.readAudit(0, 1e6)).length;
    const token = await make();
    const r = await openWith(token);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('UNAUTHENTICATED');
    expect(r.body.error.details.reason).toBe(reason);
    if (token.length > 20) expect(r.text).not.toContain(token.split('.')[1]!.slice(0, 40));
    expect(await tb.broker.store.counts()).toEqual(before);
    const events = (await tb.broker.store.readAudit(0, 1e6)).slice(auditBefore);
    expect(events.map((e) => e.type)).toEqual(['stage.denied']);
    expect(events[0]!.data.code).toBe('UNAUTHENTICATED');
  });

  it('refuses a request with no Authorization header', async () => {
    const r = await call(tb.url, 'POST', '/v1/stages', { body: { stage: 'deploy' } });
    expect([r.status, r.body.error.code, r.body.error.details.reason]).toEqual([401, 'UNAUTHENTICATED', 'missing']);
  });
});

describe('JWKS rotation', () => {
  it('an unknown kid triggers one refetch, so a rotated key is accepted; repeated unknown kids do not hammer the issuer', async () => {
    const ok = await openWith(await tb.mintToken());
    expect(ok.status).toBe(201);
    await tb.issuer.rotate();
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s cooldown configured above
    const fetchesBefore = tb.issuer.jwksFetches;
    const rotated = await openWith(await tb.mintToken());
    expect(rotated.status).toBe(201);
    expect(tb.issuer.jwksFetches).toBe(fetchesBefore + 1);
    for (let i = 0; i < 5; i++) {
      const r = await openWith(await tb.mintToken(buildClaims(), { kid: `bogus-${i}` }));
      expect(r.body.error.details.reason).toBe('unknown-key');
    }
    // the cooldown keeps refetches for unknown kids rate-limited
    expect(tb.issuer.jwksFetches).toBeLessThanOrEqual(fetchesBefore + 2);
  });
});

describe('OIDC discovery', () => {
  it('finds the JWKS through the discovery document when no jwksUri is configured', async () => {
    const d = await startTestBroker({
      configure: (c) => {
        delete c.issuers[0].jwksUri;
      },
    });
    try {
      const r = await call(d.url, 'POST', '/v1/stages', { token: await d.mintToken(), body: { stage: 'deploy' } });
      expect(r.status).toBe(201);
    } finally {
      await d.close();
    }
  });
});

// keep an HS256 sanity check honest: jose itself would accept HS256 if we let it
it('the HS256 forgery above is a valid HS256 token (so the refusal is ours, not a malformed input)', async () => {
  const pub = createPublicKey({ key: tb.issuer.publicJwk as any, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  const token = await new SignJWT(payloadFor(buildClaims())).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(String(pub)));
  const { jwtVerify } = await import('jose');
  await expect(jwtVerify(token, new TextEncoder().encode(String(pub)))).resolves.toBeTruthy();
  const r = await openWith(token);
  expect(r.body.error.details.reason).toBe('algorithm');
});

describe('an unreachable issuer', () => {
  it('fails closed with reason jwks-unavailable and no fetch error text', async () => {
    const d = await startTestBroker({
      configure: (c) => {
        delete c.issuers[0].jwksUri; // discovery, against a port nothing listens on
        c.issuers[0].issuer = 'http://127.0.0.1:9';
      },
    });
    try {
      const token = await d.issuer.sign(buildClaims(), { issuer: 'http://127.0.0.1:9' });
      const r = await call(d.url, 'POST', '/v1/stages', { token, body: { stage: 'deploy' } });
      expect([r.status, r.body.error.code, r.body.error.details.reason]).toEqual([401, 'UNAUTHENTICATED', 'jwks-unavailable']);
      expect(Object.keys(r.body.error.details).sort()).toEqual(['issuer', 'reason']);
      expect((await d.broker.store.counts()).openStages).toBe(0);
    } finally {
      await d.close();
    }
  });
});
