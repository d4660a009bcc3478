/**
 * DEVELOPMENT ONLY. A local OIDC-style issuer so `npm start` shows the whole flow with
 * no CI: an ephemeral ES256 key made at start (gone at restart), whose public JWKS the
 * broker trusts for the configured demo issuer, and a loopback-only endpoint that mints
 * tokens. Never enable it on a broker that guards anything real.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

export interface DemoIssuer {
  readonly issuer: string;
  readonly jwks: { keys: JWK[] };
  mint(claims: Record<string, unknown>): Promise<string>;
}

export async function createDemoIssuer(options: {
  issuer: string;
  audience: string | string[];
  defaultClaims: Record<string, unknown>;
  ttlSeconds: number;
}): Promise<DemoIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `demo-${randomUUID().slice(0, 8)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    issuer: options.issuer,
    jwks: { keys: [jwk] },
    async mint(claims) {
      const now = Math.floor(Date.now() / 1000);
      const body = { ...options.defaultClaims, ...claims };
      return new SignJWT(body)
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(options.issuer)
        .setAudience(options.audience)
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + options.ttlSeconds)
        .setJti(randomUUID())
        .setSubject(typeof body.sub === 'string' ? body.sub : 'demo')
        .sign(privateKey);
    },
  };
}
