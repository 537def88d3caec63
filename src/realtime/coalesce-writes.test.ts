import http from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server, type Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { coalesceWebSocketWrites, type EngineConnection } from './coalesce-writes.ts';

/** Counts the writes that reach the connection's TCP socket (`_write` + `_writev` calls). */
function countWrites(socket: Socket): () => number {
  const raw = (socket.conn as unknown as EngineConnection).transport.socket!._socket! as NetSocket & { _write: (...a: unknown[]) => void; _writev?: (...a: unknown[]) => void };
  let n = 0;
  const w = raw._write.bind(raw);
  raw._write = (...a: unknown[]) => { n++; w(...a); };
  if (raw._writev) {
    const wv = raw._writev.bind(raw);
    raw._writev = (...a: unknown[]) => { n++; wv(...a); };
  }
  return () => n;
}

describe('coalesceWebSocketWrites', () => {
  let server: http.Server;
  let io: Server;
  let url: string;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    server = http.createServer();
    io = new Server(server);
    io.on('connection', (s) => {
      if (s.handshake.auth.coalesce) coalesceWebSocketWrites(s.conn);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await io.close();
  });

  async function burst(coalesce: boolean, n: number): Promise<{ writes: number; received: number[] }> {
    const client = connect(url, { transports: ['websocket'], auth: { coalesce } });
    clients.push(client);
    const received: number[] = [];
    const all = new Promise<void>((resolve) => client.on('burst', (i: number) => {
      received.push(i);
      if (received.length === n) resolve();
    }));
    await new Promise<void>((r) => client.once('connect', () => r()));
    const socket = [...io.sockets.sockets.values()].find((s) => s.id === client.id)!;
    const writes = countWrites(socket);
    for (let i = 0; i < n; i++) socket.emit('burst', i);
    await all;
    return { writes: writes(), received };
  }

  it('delivers a burst of frames in order with a couple of writes instead of one per frame', async () => {
    const plain = await burst(false, 100);
    const coalesced = await burst(true, 100);
    expect(plain.received).toEqual([...Array(100).keys()]);
    expect(coalesced.received).toEqual([...Array(100).keys()]);
    // engine.io sends the first frame at once and the rest when that write completes.
    expect(coalesced.writes).toBeLessThanOrEqual(3);
    expect(plain.writes).toBeGreaterThanOrEqual(50);
  });
});
