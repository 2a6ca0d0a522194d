// A rendezvous port for a run on this machine: one nothing listens on now (the kernel's pick,
// freed again before it is returned, so another process could take it first; fine for tests,
// benchmarks and world-size-1 groups).
import * as net from 'net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
