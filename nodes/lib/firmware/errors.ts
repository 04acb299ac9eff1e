/** Why a firmware operation was refused; `FIRMWARE_HTTP_STATUS` maps each code to its HTTP status. */
export type FirmwareErrorCode =
  | 'INVALID'
  | 'NOT_FOUND'
  | 'DUPLICATE_VERSION'
  | 'TOO_LARGE'
  | 'WRONG_TYPE'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'BUSY';

export const FIRMWARE_HTTP_STATUS: Record<FirmwareErrorCode, number> = {
  INVALID: 400,
  NOT_FOUND: 404,
  DUPLICATE_VERSION: 409,
  TOO_LARGE: 413,
  WRONG_TYPE: 403,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  BUSY: 503,
};

export class FirmwareError extends Error {
  constructor(
    readonly code: FirmwareErrorCode,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'FirmwareError';
  }

  get status(): number {
    return FIRMWARE_HTTP_STATUS[this.code];
  }
}
