/** What agents/ needs from auth/ (tier 3), in one place. */
import { AppError, type ErrorCode } from '../core/index.ts';
export { permissionsOf, type ApiKeys, type Principal, type TokenPair, type TokenService } from '../auth/index.ts';

export const AppErrorFor = (code: ErrorCode): AppError => new AppError(code);
