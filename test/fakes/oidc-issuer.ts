/**
 * A real OIDC issuer on 127.0.0.1: discovery document, JWKS, and signing with keys made
 * in the test. Counts JWKS fetches so key-rotation and refetch-rate behaviour is visible.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';

export interface SignOptions {
  readonly kid?: string;
  readonly alg?: string;
  readonly key?: CryptoKey | Uint8Array;
  /** Seconds from now; negative for an expired token. Default 300. */
  readonly expiresIn?: number;
  /** Seconds from now for `nbf`. Default 0. */
  readonly notBefore?: number;
  readonly audience?: string | string[];
  readonly issuer?: string;
  readonly header?: Partial<JWTHeaderParameters>;
}

export interface FakeOidcIssuer {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly kid: string;
  readonly publicJwk: JWK;
  jwksFetches: number;
  sign(claims: Record<string, unknown>, options?: SignOptions): Promise<string>;
  /** Publish a new key (old one dropped); returns its kid. */
  rotate(): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeOidcIssuer(options: { audience?: string } = {}): Promise<FakeOidcIssuer> {
  let keys = await generateKeyPair('ES256', { extractable: true });
  let kid = `k-${randomUUID().slice(0, 8)}`;
  let publicJwk: JWK = { ...(await exportJWK(keys.publicKey)), kid, alg: 'ES256', use: 'sig' };
  const state = { jwksFetches: 0 };
  const server: Server = createServer((req, res) => {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks`, id_token_signing_alg_values_supported: ['ES256'] }));
    } else if (req.url === '/jwks') {
      state.jwksFetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [publicJwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const audience = options.audience ?? 'stagegate';
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    get kid() {
      return kid;
    },
    get publicJwk() {
      return publicJwk;
    },
    get jwksFetches() {
      return state.jwksFetches;
    },
    set jwksFetches(v: number) {
      state.jwksFetches = v;
    },
    async sign(claims, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: o.alg ?? 'ES256', kid: o.kid ?? kid, typ: 'JWT', ...o.header })
        .setIssuer(o.issuer ?? issuer)
        .setAudience(o.audience ?? audience)
        .setIssuedAt(now)
        .setNotBefore(now + (o.notBefore ?? 0))
        .setExpirationTime(now + (o.expiresIn ?? 300));
      return jwt.sign(o.key ?? keys.privateKey);
    },
    async rotate() {
      keys = await generateKeyPair('ES256', { extractable: true });
      kid = `k-${randomUUID().slice(0, 8)}`;
      publicJwk = { ...(await exportJWK(keys.publicKey)), kid, alg: 'ES256', use: 'sig' };
      return kid;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
