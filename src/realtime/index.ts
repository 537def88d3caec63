/**
 * realtime: the Socket.IO transport (namespace /mcp/ws). Auth middleware, agent sessions,
 * subscriptions, fan-out of domain events. No business rules: handlers call services.
 */
export { RealtimeServer, NAMESPACE, type RealtimeOptions, type SocketDenial } from './socket-server.ts';
export { rooms } from './fan-out.ts';
export { SOCKET_PRESENCE_TTL_MS } from './socket-server.ts';
