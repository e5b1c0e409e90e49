/** HTTP errors with stable codes, and the mapping from runtime errors to HTTP answers. */
import type { ZodError } from 'zod';
import { isNestswapError } from '../runtime/errors.js';
import { describeIssues, type ApiErrorCode, type ErrorBody } from './protocol.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export function validationError(what: string, error: ZodError): ApiError {
  return new ApiError(400, 'ERR_VALIDATION', `Invalid ${what}: ${describeIssues(error)}`, {
    issues: error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
  });
}

const RUNTIME_STATUS: Record<string, [number, ApiErrorCode]> = {
  ERR_PACKAGE_MANIFEST: [400, 'ERR_PACKAGE_MANIFEST'],
  ERR_FORMAT_UNSUPPORTED: [400, 'ERR_FORMAT_UNSUPPORTED'],
  ERR_PACKAGE_MISSING: [400, 'ERR_PACKAGE_MANIFEST'],
  ERR_PACKAGE_TENSOR: [400, 'ERR_PACKAGE_MANIFEST'],
  ERR_ARCH_INVALID: [400, 'ERR_PACKAGE_MANIFEST'],
  ERR_PACKAGE_DIGEST: [400, 'ERR_PACKAGE_DIGEST'],
  ERR_PACKAGE_SIZE: [400, 'ERR_PACKAGE_SIZE'],
  ERR_CONFIG_INVALID: [400, 'ERR_CONFIG_INVALID'],
  ERR_BUDGET_INVALID: [400, 'ERR_BUDGET_INVALID'],
  ERR_BUDGET_INFEASIBLE: [422, 'ERR_BUDGET_INFEASIBLE'],
  ERR_PROFILE_INVALID: [409, 'ERR_PROFILE_INVALID'],
  ERR_LATENCY_TABLE_INVALID: [409, 'ERR_PROFILE_INVALID'],
  ERR_PREDICTOR_INVALID: [409, 'ERR_PREDICTOR_INVALID'],
  ERR_NAME_INVALID: [400, 'ERR_NAME_INVALID'],
  ERR_VERSION_INVALID: [400, 'ERR_VERSION_INVALID'],
  ERR_PATH_INVALID: [400, 'ERR_PATH_INVALID'],
};

/** Any thrown value as an ApiError (unknown failures become 500 ERR_INTERNAL). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isNestswapError(err)) {
    const alias = err.details?.code;
    if (alias === 'ERR_NO_ACCURACY_PREDICTOR') return new ApiError(409, 'ERR_NO_ACCURACY_PREDICTOR', err.message);
    const m = RUNTIME_STATUS[err.code];
    if (m) return new ApiError(m[0], m[1], err.message, err.details, { cause: err });
  }
  // a path parameter that is not valid percent-encoding (express's decode fails with a URIError)
  if (err instanceof URIError) return new ApiError(400, 'ERR_VALIDATION', 'The request path is not valid percent-encoding.');
  // body-parser errors carry `type` and `status`
  const e = err as { type?: string; status?: number; message?: string };
  if (e && e.type === 'entity.too.large') return new ApiError(413, 'ERR_BODY_TOO_LARGE', `Request body is larger than the limit for this route.`);
  if (e && (e.type === 'entity.parse.failed' || e.type === 'encoding.unsupported' || e.type === 'charset.unsupported'))
    return new ApiError(400, 'ERR_VALIDATION', `Request body cannot be parsed: ${e.message ?? 'malformed'}.`);
  if (e && e.type === 'request.aborted') return new ApiError(400, 'ERR_VALIDATION', 'Request body was aborted.');
  return new ApiError(500, 'ERR_INTERNAL', 'Internal error.', undefined, { cause: err });
}
