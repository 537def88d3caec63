/** The `local` AI provider: the offline stage handlers behind the AI provider port. */
import type { AiProvider } from '../ai/index.ts';
import { LOCAL_STAGE_HANDLERS } from '../pipelines/stages/index.ts';

export const localProvider: AiProvider = {
  name: 'local',
  supports: (taskType) => taskType in LOCAL_STAGE_HANDLERS,
  analyze: (taskType, input, ctx) => LOCAL_STAGE_HANDLERS[taskType]!({ task_type: taskType, parameters: input, ...(ctx?.reportProgress ? { reportProgress: ctx.reportProgress } : {}) }),
};
