/** Telemetry validation (iotb-validate): parsing within limits, JSON Schema per reading, ts/id, duplicates. */
export * from './options';
export { parsePayload, locateJsonError, exceedsDepth } from './parse';
export { inspectReading } from './inspect';
export { readTimestamp } from './timestamp';
export { DuplicateWindow } from './duplicates';
export { ReadingClock, readingClock } from './clock';
export {
  compileReadingSchema,
  DEFAULT_SCHEMA_OPTIONS,
  SchemaError,
  type ReadingSchema,
  type SchemaOptions,
  type UnknownProperties,
  type Violation,
} from './schema';
export {
  validatePayload,
  type AcceptedReading,
  type PayloadVerdict,
  type RejectedReading,
  type ValidateContext,
} from './readings';
export {
  useSchema,
  validateMicroBatch,
  type MicroBatchVerdict,
  type ReadingBatch,
  type RefusedReading,
  type SchemaLookup,
} from './micro-batch';
