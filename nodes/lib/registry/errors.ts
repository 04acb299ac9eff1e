/** Why a registry operation was refused; `code` maps to an HTTP status in iotb-provision. */
export type RegistryErrorCode = 'INVALID' | 'NOT_FOUND' | 'CONFLICT' | 'FORBIDDEN';

export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}
