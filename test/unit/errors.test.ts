import { StagegateError, httpStatusFor, ERROR_CODES } from '../../sdk/errors';

describe('StagegateError', () => {
  it('round-trips every code through its wire body', () => {
    for (const code of ERROR_CODES) {
      const err = new StagegateError(code, `m-${code}`, { details: { rule: 'r' } });
      const back = StagegateError.fromBody(httpStatusFor(code), JSON.parse(JSON.stringify(err.toJSON())));
      expect(back.code).toBe(code);
      expect(back.message).toBe(`m-${code}`);
      expect(back.details).toEqual({ rule: 'r' });
    }
  });

  it('turns a body without a known code into a coded error by status', () => {
    expect(StagegateError.fromBody(502, '<html>').code).toBe('BROKER_UNAVAILABLE');
    expect(StagegateError.fromBody(401, { error: { code: 'NOPE' } }).code).toBe('UNAUTHENTICATED');
  });
});
