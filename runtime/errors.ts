/**
 * Errors with stable codes. Tests and HTTP boundaries look at `code`, never the message.
 */
export type ErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_ARCH_INVALID'
  | 'ERR_FAMILY_UNKNOWN'
  | 'ERR_PACKAGE_MISSING'
  | 'ERR_PACKAGE_MANIFEST'
  | 'ERR_FORMAT_UNSUPPORTED'
  | 'ERR_PACKAGE_DIGEST'
  | 'ERR_PACKAGE_SIZE'
  | 'ERR_PACKAGE_ROLLBACK'
  | 'ERR_PACKAGE_WRONG_SOFTWARE'
  | 'ERR_METADATA_EXPIRED'
  | 'ERR_METADATA_SIGNATURE'
  | 'ERR_METADATA_ROLLBACK'
  | 'ERR_METADATA_MISMATCH'
  | 'ERR_METADATA_UNAVAILABLE'
  | 'ERR_TARGET_UNKNOWN'
  | 'ERR_TRUST_ROOT_MISSING'
  | 'ERR_TRUST_ROOT_INVALID'
  | 'ERR_TUF_KEY'
  | 'ERR_PACKAGE_TENSOR'
  | 'ERR_SESSION'
  | 'ERR_INPUT'
  | 'ERR_PREDICTOR_INVALID'
  | 'ERR_LATENCY_TABLE_INVALID'
  | 'ERR_PROFILE_INVALID'
  | 'ERR_BUDGET_INFEASIBLE'
  | 'ERR_BUDGET_INVALID'
  | 'ERR_SWAP'
  | 'ERR_HEALTH_CHECK'
  | 'ERR_REGISTRY_UNREACHABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_USAGE'
  | 'ERR_DATA_INVALID'
  | 'ERR_DATABASE'
  | 'ERR_BUS'
  | 'ERR_NAME_INVALID'
  | 'ERR_VERSION_INVALID'
  | 'ERR_PATH_INVALID'
  | 'ERR_PATH_ESCAPE'
  | 'ERR_DOWNLOAD_TIMEOUT'
  | 'ERR_METADATA_TOO_LARGE'
  | 'ERR_METADATA_INVALID'
  | 'ERR_CHECKPOINT_FORMAT'
  | 'ERR_CHECKPOINT_UNSUPPORTED'
  | 'ERR_CHECKPOINT_TENSOR'
  | 'ERR_CHECKPOINT_SHAPE'
  | 'ERR_IMPORT_NET'
  | 'ERR_CALIBRATION_INPUT'
  | 'ERR_SHUTDOWN';

export class NestswapError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NestswapError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isNestswapError(e: unknown, code?: ErrorCode): e is NestswapError {
  return e instanceof NestswapError && (code === undefined || e.code === code);
}
