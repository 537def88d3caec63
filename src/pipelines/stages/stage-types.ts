/** The handler contract shared by every stage file (re-exported from index.ts). */
export interface StageContext {
  task_type: string;
  parameters: Record<string, unknown>;
  reportProgress?: (p: number, message?: string) => void;
}

export type StageHandler = (ctx: StageContext) => Promise<Record<string, unknown>>;
