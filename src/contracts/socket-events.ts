/** Socket.IO client→server payloads (SPEC §8), validated like REST bodies. */
import Type, { type Static } from 'typebox';
import { Id, JsonObject } from './common.ts';
import { HeartbeatBody } from './agents.ts';
import { Attempt as TaskAttempt, TaskErrorBody } from './tasks.ts';

const TaskId = Type.String({ minLength: 1, maxLength: 64 });
const Attempt = Type.Optional(TaskAttempt);

export const SocketHeartbeat = HeartbeatBody;
export const SocketStatusUpdate = Type.Object({ status: Type.Union([Type.Literal('active'), Type.Literal('inactive'), Type.Literal('maintenance')]) }, { additionalProperties: false });
export const SocketTaskAck = Type.Object({ task_id: TaskId, attempt: Attempt, reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });
export const SocketTaskProgress = Type.Object({ task_id: TaskId, attempt: Attempt, progress: Type.Number({ minimum: 0, maximum: 1 }), message: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false });
/** `{task_id, attempt?, success, data|error, metadata?}` or the seed's `{task_id, result}`. */
export const SocketTaskResult = Type.Object({
  task_id: TaskId,
  attempt: Attempt,
  success: Type.Optional(Type.Boolean()),
  data: Type.Optional(Type.Unknown()),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(TaskErrorBody),
  metadata: Type.Optional(JsonObject),
}, { additionalProperties: false });
export type SocketTaskResultInput = Static<typeof SocketTaskResult>;
export const TOPICS = ['agents', 'tasks', 'pipelines', 'system'] as const;
export const SocketSubscription = Type.Union([
  Type.Object({ pipeline_id: Id }, { additionalProperties: false }),
  Type.Object({ task_id: Id }, { additionalProperties: false }),
  Type.Object({ agent_id: Id }, { additionalProperties: false }),
  Type.Object({ topic: Type.Enum(TOPICS) }, { additionalProperties: false }),
]);
export const SocketAuthRefresh = Type.Object({ token: Type.String({ minLength: 1, maxLength: 8192 }) }, { additionalProperties: false });
