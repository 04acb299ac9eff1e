import type { SenderStatus } from './sender';

/** The catalog key for a sender problem in a few words ("InfluxDB down", "401 unauthorized", ...). */
export function shortError(s: SenderStatus): string {
  const st = s.lastStatus;
  const key =
    st === undefined
      ? 'down'
      : st === 401
        ? 'unauthorized'
        : st === 403
          ? 'forbidden'
          : st === 404
            ? 'notFound'
            : st === 429
              ? 'rateLimited'
              : st === 408 || st >= 500
                ? 'serverError'
                : 'refused';
  return `iotb-influx-write.problem.${key}`;
}
