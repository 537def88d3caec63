/**
 * Coalesces the WebSocket frames one flush of a connection writes into one socket write.
 *
 * engine.io sends the packets queued on a connection in a loop, one `ws.send` (one `writev`
 * syscall) per packet: a dispatch round handing 20 tasks to an agent, or a group of result
 * acks, cost 20 syscalls on that connection. Corking the underlying TCP/TLS socket around the
 * loop hands the kernel all frames at once (Node flushes corked writes with one `writev`).
 * Frames, their order and their callbacks are unchanged; nothing waits for a later tick.
 */
import type { Socket as NetSocket } from 'node:net';

interface EngineTransport {
  readonly name: string;
  send(packets: unknown[]): void;
  socket?: { _socket?: NetSocket };
  [COALESCED]?: true;
}

/** The engine.io connection behind a Socket.IO socket (`socket.conn`). */
export interface EngineConnection {
  transport: EngineTransport;
  on(event: 'upgrade', listener: (transport: EngineTransport) => void): unknown;
}

const COALESCED = Symbol('mcp.coalesced');

function patch(transport: EngineTransport): void {
  if (transport.name !== 'websocket' || transport[COALESCED]) return;
  const raw = transport.socket?._socket;
  if (!raw || typeof raw.cork !== 'function') return;
  const send = transport.send.bind(transport);
  transport.send = (packets: unknown[]) => {
    raw.cork();
    try {
      send(packets);
    } finally {
      raw.uncork();
    }
  };
  transport[COALESCED] = true;
}

/** Applies to the connection's transport now and to the WebSocket it may upgrade to. */
export function coalesceWebSocketWrites(conn: EngineConnection): void {
  patch(conn.transport);
  conn.on('upgrade', patch);
}
