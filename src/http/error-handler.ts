/**
 * The one HTTP error mapper: every failure becomes SPEC §2's envelope
 * `{error: {code, message, details?, request_id}}`. Unknown errors become INTERNAL_ERROR and are
 * logged under the request id; nothing about them (stack, SQL, PHI) reaches the client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ValidationError, asAppError } from '../core/index.ts';
import { toFieldErrors } from './validation.ts';

export function toAppError(err: FastifyError | Error): AppError {
  if (err instanceof AppError) return err;
  const fe = err as FastifyError & { validationContext?: string };
  if (fe.validation) {
    const part = fe.validationContext === 'body' ? '' : fe.validationContext === 'params' ? 'path' : fe.validationContext === 'querystring' ? 'query' : '';
    return new ValidationError('The request is invalid.', toFieldErrors(fe.validation, part));
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('REQUEST_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ValidationError('Content-Type must be application/json.', [{ field: '(body)', message: 'unsupported media type' }]);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ValidationError('The JSON body is empty.', [{ field: '(body)', message: 'is empty' }]);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ValidationError('The body is not valid JSON.', [{ field: '(body)', message: 'malformed JSON' }]);
    default:
      break;
  }
  if (err instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return new ValidationError('The body is not valid JSON.', [{ field: '(body)', message: 'malformed JSON' }]);
  }
  if (fe.statusCode === 404) return new AppError('NOT_FOUND');
  if (fe.statusCode === 413) return new AppError('REQUEST_TOO_LARGE');
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new ValidationError('The request is invalid.', [{ field: '(request)', message: 'is invalid' }]);
  return asAppError(err);
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: AppError): FastifyReply {
  if (err.retryAfter !== undefined) void reply.header('Retry-After', String(Math.max(1, Math.ceil(err.retryAfter))));
  return reply.status(err.status).send({ error: { ...err.toJSON(), request_id: request.id } });
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const appErr = toAppError(err);
  if (appErr.status >= 500) request.log.error({ err, code: appErr.code }, 'request failed');
  else request.log.debug({ code: appErr.code }, 'request refused');
  (request as { errorCode?: string }).errorCode = appErr.code;
  return sendError(request, reply, appErr);
}
