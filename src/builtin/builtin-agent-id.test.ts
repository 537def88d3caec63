/** The built-in agent's id per process (builtinAgentId): one shared id only for a single process. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BUILTIN_AGENT_ID, builtinAgentId } from './builtin-agents.ts';

const AGENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

describe('builtinAgentId', () => {
  it('is builtin-local for one process, the configured id when given, and builtin-<host>-<port> for several', () => {
    expect(builtinAgentId({ severalProcesses: false, host: 'h', port: 8080 })).toBe(BUILTIN_AGENT_ID);
    expect(builtinAgentId({ configured: 'my-builtin', severalProcesses: true, host: 'h', port: 8080 })).toBe('my-builtin');
    expect(builtinAgentId({ severalProcesses: true, host: 'mcp-7f9c.internal', port: 8080 })).toBe('builtin-mcp-7f9c-internal-8080');
    expect(builtinAgentId({ severalProcesses: true, host: '...', port: 9000 })).toBe('builtin-host-9000');
  });

  it('gives processes on a port chosen by the system different ids', () => {
    const one = builtinAgentId({ severalProcesses: true, host: 'h', port: 0 });
    const two = builtinAgentId({ severalProcesses: true, host: 'h', port: 0 });
    expect(one).toMatch(/^builtin-h-[0-9a-f]{8}$/);
    expect(one).not.toBe(two);
  });

  it('is always a valid agent id that keeps the port, whatever the host name', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), fc.integer({ min: 1, max: 65535 }), (host, port) => {
      const id = builtinAgentId({ severalProcesses: true, host, port });
      expect(id).toMatch(AGENT_ID);
      expect(id.endsWith(`-${port}`)).toBe(true);
    }));
  });
});
