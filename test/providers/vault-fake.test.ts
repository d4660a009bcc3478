/**
 * The fake Vault's own contract, driven by the real node-vault client: the Vault
 * behaviours the provider's tests rely on but do not all exercise directly.
 */
import nodeVault from 'node-vault';
import { startFakeVault, type FakeVault } from '../fakes/vault';

let fake: FakeVault;
beforeEach(async () => {
  fake = await startFakeVault({ policies: { reader: { 'secret/data/app/*': ['read'] }, creator: { 'auth/token/create': ['update'] } } });
});
afterEach(() => fake.close());

const client = (token: string) => nodeVault({ endpoint: fake.url, token });

describe('fake vault', () => {
  it('revokes children and their leases with the parent, but not orphans', async () => {
    fake.addDatabaseRole('app');
    const root = client(fake.rootToken);
    const parent = (await root.write('auth/token/create', { policies: ['reader', 'creator'], ttl: '1h' })).auth;
    const viaParent = client(parent.client_token);
    const child = (await viaParent.write('auth/token/create', { ttl: '30m' })).auth;
    const orphan = (await root.write('auth/token/create-orphan', { ttl: '30m' })).auth;
    const lease = await client(child.client_token).read('database/creds/app').catch((e: unknown) => e);
    // The child inherits `reader`/`creator` (+default): no database access.
    expect(lease).toMatchObject({ response: { statusCode: 403, body: { errors: ['1 error occurred:\n\t* permission denied\n\n'] } } });
    const rootLease = await client(orphan.client_token).read('database/creds/app');
    expect(rootLease.lease_id).toMatch(/^database\/creds\/app\//);
    await root.write('auth/token/revoke-accessor', { accessor: parent.accessor });
    expect(fake.isTokenValid(parent.client_token)).toBe(false);
    expect(fake.isTokenValid(child.client_token)).toBe(false);
    expect(fake.isTokenValid(orphan.client_token)).toBe(true);
    await root.write('auth/token/revoke-accessor', { accessor: orphan.accessor });
    expect(fake.isDatabaseUserValid(rootLease.data.username)).toBe(false);
    await expect(root.write('auth/token/revoke-accessor', { accessor: orphan.accessor })).rejects.toMatchObject({
      response: { statusCode: 400, body: { errors: ['invalid accessor'] } },
    });
  });

  it('enforces the subset rule without sudo, and forbids children of use-limited tokens', async () => {
    const root = client(fake.rootToken);
    const reader = (await root.write('auth/token/create', { policies: ['reader'] })).auth.client_token;
    await expect(client(reader).write('auth/token/create', { policies: ['other'] })).rejects.toMatchObject({ response: { statusCode: 403 } });
    const creator = (await root.write('auth/token/create', { policies: ['creator', 'reader'] })).auth.client_token;
    await expect(client(creator).write('auth/token/create', { policies: ['root'] })).rejects.toMatchObject({
      response: { statusCode: 400, body: { errors: ['child policies must be subset of parent'] } },
    });
    const limited = (await root.write('auth/token/create', { policies: ['creator'], num_uses: 5 })).auth.client_token;
    await expect(client(limited).write('auth/token/create', {})).rejects.toMatchObject({
      response: { statusCode: 400, body: { errors: ['restricted use token cannot generate child tokens'] } },
    });
  });

  it('lists accessors only with sudo, via GET ?list=true (Node cannot parse LIST)', async () => {
    const root = nodeVault({ endpoint: fake.url, token: fake.rootToken, noCustomHTTPVerbs: true });
    const keys = (await root.list('auth/token/accessors')).data.keys as string[];
    expect(keys).toHaveLength(1);
    const reader = (await root.write('auth/token/create', { policies: ['reader'] })).auth.client_token;
    await expect(nodeVault({ endpoint: fake.url, token: reader, noCustomHTTPVerbs: true }).list('auth/token/accessors')).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
  });

  it('accepts Authorization: Bearer, answers 404 {"errors":[]} for an unknown path, and expires by its clock', async () => {
    const res = await fetch(`${fake.url}/v1/auth/token/lookup-self`, { headers: { authorization: `Bearer ${fake.rootToken}` } });
    expect(res.status).toBe(200);
    const missing = await fetch(`${fake.url}/v1/secret/data/nothing`, { headers: { 'x-vault-token': fake.rootToken } });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ errors: [] });
    const t = fake.createToken({ policies: ['reader'], ttlSeconds: 60 });
    expect(fake.isTokenValid(t.token)).toBe(true);
    fake.advance(60);
    expect(fake.isTokenValid(t.token)).toBe(false);
    const bad = await fetch(`${fake.url}/v1/auth/token/lookup-self`, { headers: { 'x-vault-token': t.token } });
    expect(bad.status).toBe(403);
    expect(await bad.json()).toEqual({ errors: ['permission denied'] });
  });

  it('answers a sealed outage with 503 and recovers after the given count', async () => {
    fake.setOutage({ status: 503, count: 1 });
    const root = client(fake.rootToken);
    await expect(root.tokenLookupSelf()).rejects.toMatchObject({ response: { statusCode: 503, body: { errors: ['Vault is sealed'] } } });
    await expect(root.tokenLookupSelf()).resolves.toMatchObject({ data: { policies: ['root'] } });
  });
});
