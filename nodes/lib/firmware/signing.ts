import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';

/** What a signature covers: everything a device must trust before it installs an image. */
export interface SignedFields {
  type: string;
  version: string;
  size: number;
  sha256: string;
}

/**
 * The exact bytes signed (UTF-8), one field per line, so that device firmware can rebuild them without a JSON
 * library: `iotb-firmware-v1\n<type>\n<version>\n<size>\n<sha256 hex>`. Type and version never hold a newline.
 */
export function signedMessage(f: SignedFields): Buffer {
  return Buffer.from(`iotb-firmware-v1\n${f.type}\n${f.version}\n${f.size}\n${f.sha256}`, 'utf8');
}

/** True when `signature` (base64) is the Ed25519 signature of `fields` by `publicKey` (PEM or key object). */
export function verifyManifest(
  publicKey: string | KeyObject,
  fields: SignedFields,
  signature: string,
): boolean {
  try {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    return verify(null, signedMessage(fields), key, Buffer.from(signature, 'base64'));
  } catch {
    return false; // a malformed key or signature is simply not a valid signature
  }
}

export const SIGNING_KEY_FILE = 'signing-key.pem';

/**
 * The backend's firmware signing key (Ed25519). Created on first use in `<dir>/signing-key.pem` with mode 0600
 * (PKCS#8 PEM); the public key is what device firmware is built with to check every image it is offered.
 */
export class FirmwareSigner {
  readonly publicKeyPem: string;

  private constructor(private readonly privateKey: KeyObject) {
    this.publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  }

  /** Loads the key from `dir`, or generates and stores one when there is none. */
  static open(dir: string): FirmwareSigner {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, SIGNING_KEY_FILE);
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const { privateKey } = generateKeyPairSync('ed25519');
      pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      writeFileAtomicSync(file, pem, 0o600);
    }
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file} does not hold an Ed25519 private key`);
    return new FirmwareSigner(key);
  }

  /** The raw 32-byte public key, base64 (for firmware that stores the bare key rather than PEM). */
  get publicKeyRaw(): string {
    const der = createPublicKey(this.privateKey).export({ type: 'spki', format: 'der' });
    return der.subarray(der.length - 32).toString('base64');
  }

  sign(fields: SignedFields): string {
    return sign(null, signedMessage(fields), this.privateKey).toString('base64');
  }
}
