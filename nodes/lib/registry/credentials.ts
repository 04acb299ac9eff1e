import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Tokens are 256 random bits, so there is nothing to brute-force and nothing a slow KDF (bcrypt, scrypt,
 * argon2) would protect: those exist to stretch low-entropy passwords, and would cost 50-100 ms of CPU per
 * MQTT CONNECT — a denial-of-service lever on the connect path. A keyed hash (HMAC-SHA-256 with a
 * per-registry secret kept in Node-RED credentials) costs about a microsecond, and a stolen registry file
 * alone does not let anyone check token guesses offline.
 */
export const TOKEN_BYTES = 32;

/** Prefixes make leaked secrets recognisable to secret scanners and to people. */
export const DEVICE_TOKEN_PREFIX = 'iotbd_';
export const API_KEY_PREFIX = 'iotbk_';
export const PROVISIONING_KEY_PREFIX = 'iotbp_';

/** A new random secret for a registry (hex, 256 bits). */
export function generateRegistrySecret(): string {
  return randomBytes(32).toString('hex');
}

export function generateToken(prefix: string): string {
  return prefix + randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * The key a device signs HTTP bodies with (iotb-auth, signed mode), derived from its token so there is no
 * second secret to hand out: HMAC-SHA-256(key = token, "iotb-signing-key-v1").
 */
export function deriveSigningKey(token: string | Buffer): Buffer {
  return createHmac('sha256', token).update('iotb-signing-key-v1').digest();
}

export class TokenHasher {
  private readonly key: Buffer;
  private readonly sealKey: Buffer;

  constructor(secret: string) {
    if (typeof secret !== 'string' || secret.length < 32)
      throw new Error('the registry secret must be at least 32 characters');
    this.key = Buffer.from(secret);
    this.sealKey = createHmac('sha256', this.key).update('iotb-seal-v1').digest();
  }

  /**
   * Encrypts a signing key for storage (AES-256-GCM under a key derived from the registry secret): the
   * server must be able to recompute signatures, so unlike tokens it cannot keep only a hash, but a
   * registry file without the secret still reveals nothing. Output: base64url(iv | tag | ciphertext).
   */
  seal(plain: Buffer): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.sealKey, iv);
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url');
  }

  unseal(sealed: string): Buffer {
    const b = Buffer.from(sealed, 'base64url');
    const d = createDecipheriv('aes-256-gcm', this.sealKey, b.subarray(0, 12));
    d.setAuthTag(b.subarray(12, 28));
    return Buffer.concat([d.update(b.subarray(28)), d.final()]);
  }

  /** The keyed hash of a token, base64url (how it is stored). */
  hash(token: string): string {
    return this.digest(token).toString('base64url');
  }

  digest(token: string | Buffer): Buffer {
    return createHmac('sha256', this.key).update(token).digest();
  }
}

/** Constant-time equality of two digests (both 32 bytes; a length mismatch is a plain `false`). */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
