/** A missing event payload means `{}` only where every field is optional (SPEC §8). */
import { describe, expect, it } from 'vitest';
import { SocketHeartbeat, SocketStatusUpdate, SocketSubscription, SocketTaskAck } from '../contracts/socket-events.ts';
import { payloadOf, validate } from './socket-kit.ts';

describe('payloadOf', () => {
  it('reads a missing heartbeat payload as {}, which validates', () => {
    expect(payloadOf(SocketHeartbeat, undefined)).toEqual({});
    expect(validate(SocketHeartbeat, payloadOf(SocketHeartbeat, undefined))).toEqual({});
  });

  it('leaves a payload that is there as it is, null included', () => {
    const body = { status: 'active' };
    expect(payloadOf(SocketHeartbeat, body)).toBe(body);
    expect(payloadOf(SocketHeartbeat, null)).toBeNull();
    expect(() => validate(SocketHeartbeat, payloadOf(SocketHeartbeat, null))).toThrow(expect.objectContaining({ code: 'VALIDATION_ERROR' }));
  });

  it('keeps a missing payload missing where a field is required', () => {
    for (const schema of [SocketStatusUpdate, SocketTaskAck, SocketSubscription]) {
      expect(payloadOf(schema, undefined)).toBeUndefined();
      expect(() => validate(schema, payloadOf(schema, undefined))).toThrow(expect.objectContaining({ code: 'VALIDATION_ERROR' }));
    }
  });
});
