/** A plain HTTP server on 127.0.0.1 with a free port, for tests' stand-in endpoints. */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function listenOnLoopback(handler: RequestListener): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer(handler);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

export const portOf = (s: Server): number => (s.address() as AddressInfo).port;
