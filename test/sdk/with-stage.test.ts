/** withStage and the heartbeat loop against the real broker (in process, dev provider). */
import { call, startTestBroker, type TestBroker } from '../harness/broker';
import { createStagegateClient, type ClosedStage } from '../../sdk/client';
import { isStagegateError } from '../../sdk/errors';
import { withStage } from '../../sdk/with-stage';
import { startStageHeartbeat } from '../../sdk/heartbeat';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker?.close();
});

async function devState(value: string): Promise<string> {
  return ((await call(broker.url, 'POST', '/v1/dev/check', { body: { value } })).body as { state: string }).state;
}

describe('withStage', () => {
  it('hands the credentials to the callback, returns its result, and revokes at the end', async () => {
    let closed: ClosedStage | undefined;
    let secret = '';
    const result = await withStage(
      { stage: 'deploy', brokerUrl: broker.url, identityToken: await broker.mintToken(), env: {}, onClose: (c) => (closed = c) },
      async (stage) => {
        secret = stage.credential('deployer').values.secretAccessKey!;
        expect(await devState(secret)).toBe('active');
        expect(() => stage.credential('nope')).toThrow(TypeError);
        return 42;
      },
    );
    expect(result).toBe(42);
    expect(await devState(secret)).toBe('revoked');
    expect(closed!.revoked.map((r) => r.name).sort()).toEqual(['db', 'deployer', 'gcp']);
  });

  it('closes the stage even when the callback throws, and rethrows its error', async () => {
    let secret = '';
    const boom = new Error('boom');
    await expect(
      withStage({ stage: 'publish', brokerUrl: broker.url, identityToken: await broker.mintToken(), env: {} }, async (stage) => {
        secret = stage.credential('npm').values.token!;
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await devState(secret)).toBe('revoked');
  });

  it('heartbeats keep a stage alive past its heartbeat window', async () => {
    // publish: 2 s window; the callback runs for 4.5 s.
    const secret = await withStage({ stage: 'publish', brokerUrl: broker.url, identityToken: await broker.mintToken(), env: {} }, async (stage) => {
      await new Promise((r) => setTimeout(r, 4500));
      expect(stage.signal.aborted).toBe(false);
      const token = stage.credential('npm').values.token!;
      expect(await devState(token)).toBe('active');
      return token;
    });
    expect(await devState(secret)).toBe('revoked');
  });

  it('reads STAGEGATE_BROKER_URL and STAGEGATE_IDENTITY_TOKEN from the given env, and surfaces a denial by code', async () => {
    const env = { STAGEGATE_BROKER_URL: broker.url, STAGEGATE_IDENTITY_TOKEN: await broker.mintToken() };
    let ran = false;
    const err = await withStage({ stage: 'no-such-stage', env }, async () => {
      ran = true;
    }).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(isStagegateError(err)).toBe(true);
    expect((err as Error).message).not.toContain(env.STAGEGATE_IDENTITY_TOKEN);
    await expect(withStage({ stage: 'deploy', env: {} }, async () => 1)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('the client speaks the real broker: get shows the stage open, then closed; close is idempotent', async () => {
    const client = createStagegateClient({ brokerUrl: broker.url, identityToken: await broker.mintToken() });
    const opened = await client.openStage({ stage: 'publish' });
    expect((await client.getStage(opened.stageId, opened.stageToken)).state).toBe('open');
    const beat = await client.heartbeat(opened.stageId, opened.stageToken);
    expect(beat.installPhaseOpen).toBe(false);
    await client.closeStage(opened.stageId, opened.stageToken, { exitCode: 0 });
    await client.closeStage(opened.stageId, opened.stageToken, { exitCode: 0 });
    expect((await client.getStage(opened.stageId, opened.stageToken)).state).toBe('closed');
    await expect(client.heartbeat(opened.stageId, opened.stageToken)).rejects.toMatchObject({ code: 'STAGE_CLOSED' });
  });

  it('the heartbeat loop reports a stage closed elsewhere as lost and stops', async () => {
    const client = createStagegateClient({ brokerUrl: broker.url, identityToken: await broker.mintToken() });
    const opened = await client.openStage({ stage: 'publish' });
    let beats = 0;
    const lost = new Promise<string>((resolve) => {
      const beat = startStageHeartbeat({
        client, stageId: opened.stageId, stageToken: opened.stageToken, heartbeatSeconds: 1,
        onBeat: () => {
          beats++;
          if (beats === 1) void client.closeStage(opened.stageId, opened.stageToken);
        },
        onLost: (err) => {
          void beat.stop();
          resolve(err.code);
        },
      });
    });
    expect(await lost).toBe('STAGE_CLOSED');
    expect(beats).toBe(1);
  });
});
