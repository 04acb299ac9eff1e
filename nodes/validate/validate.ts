import { readFileSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { elementMessage } from '../lib/batch';
import type { DeviceDirectory } from '../lib/device-contracts';
import type { DeviceRef } from '../lib/device-id';
import { ackLedger, addParts } from '../lib/ingest/ack-ledger';
import { isMicroBatch } from '../lib/ingest/micro-batch';
import { answerOnce } from '../lib/http/one-answer';
import { rejection, refuseMessage } from '../lib/rejection';
import {
  compileReadingSchema,
  DEFAULT_LIMITS,
  DEFAULT_TAG_KEYS,
  DEFAULT_WINDOW,
  DuplicateWindow,
  readingClock,
  SchemaError,
  useSchema,
  validateMicroBatch,
  validatePayload,
  type PayloadVerdict,
  type ReadingSchema,
  type Refusal,
  type SchemaOptions,
  type TimestampWindow,
  type UnknownProperties,
  type ValidateContext,
  type ValidateLimits,
} from '../lib/validate';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';

type SchemaSource = 'type' | 'inline' | 'file' | 'msg';

interface ValidateNodeDef extends NodeDef {
  schemaSource?: SchemaSource;
  schema: string;
  schemaFile: string;
  schemaProperty: string;
  registry: string;
  coerce: boolean;
  useDefaults: boolean;
  unknown: UnknownProperties;
  allErrors: boolean;
  split?: boolean;
  maxBytes: number | string;
  maxDepth: number | string;
  maxKeys: number | string;
  maxArrayLength: number | string;
  maxFutureS: number | string;
  maxAgeH: number | string;
  dedupPerDevice: number | string;
  dedupDevices: number | string;
  /** More tag names (comma-separated) that a field may not have, besides device and type. */
  tagKeys: string;
}

/** The schema (or why there is none) and the rules a validate node applies; shared with the editor's test. */
interface NodeRules {
  options: SchemaOptions;
  limits: ValidateLimits;
  window: TimestampWindow;
  tagKeys: ReadonlySet<string>;
}

/** A micro-batch as iotb-validate receives it (see nodes/lib/ingest/micro-batch.ts). */
type BatchMessage = NodeMessageInFlow & { device: unknown[]; ackId?: unknown; rejection?: unknown };

/** What a node's `send` takes. */
type SendArg = NodeMessage | (NodeMessage | NodeMessage[] | null)[];

/** A compiled schema, or the refusal every reading gets while it is missing or broken. */
type SchemaChoice = ReadingSchema | Refusal;

const NO_REGISTRY = 'no device registry configured: choose one, or another schema source';

/** Devices remembered by the duplicate window when the node does not say. */
const DEFAULT_DEDUP_DEVICES = 10_000;

/** Limits and windows are numbers >= 0. */
const positive = (value: unknown, fallback: number): number => numberSetting(value, { fallback, min: 0 });

/** A number of entries: the duplicate window needs whole ones. */
const count = (value: unknown, fallback: number): number =>
  numberSetting(value, { fallback, min: 0, integer: true });

function rulesFrom(config: Partial<ValidateNodeDef>): NodeRules {
  return {
    options: {
      coerce: config.coerce === true,
      useDefaults: config.useDefaults === true,
      unknown: config.unknown === 'strip' || config.unknown === 'reject' ? config.unknown : 'schema',
      allErrors: config.allErrors === true,
    },
    limits: {
      maxBytes: positive(config.maxBytes, DEFAULT_LIMITS.maxBytes),
      maxDepth: positive(config.maxDepth, DEFAULT_LIMITS.maxDepth),
      maxKeys: positive(config.maxKeys, DEFAULT_LIMITS.maxKeys),
      maxArrayLength: positive(config.maxArrayLength, DEFAULT_LIMITS.maxArrayLength),
    },
    window: {
      maxFutureMs: positive(config.maxFutureS, DEFAULT_WINDOW.maxFutureMs / 1000) * 1000,
      maxAgeMs: positive(config.maxAgeH, DEFAULT_WINDOW.maxAgeMs / 3_600_000) * 3_600_000,
    },
    tagKeys: new Set([
      ...DEFAULT_TAG_KEYS,
      ...(typeof config.tagKeys === 'string' ? config.tagKeys.split(',') : [])
        .map((s) => s.trim())
        .filter(Boolean),
    ]),
  };
}

function compileChoice(schema: unknown, options: SchemaOptions, what: string): SchemaChoice {
  try {
    return compileReadingSchema(schema, options);
  } catch (err) {
    const reason = err instanceof SchemaError ? err.message : String(err);
    return { code: 'SCHEMA_INVALID', reason: `${what}: ${reason}` };
  }
}

function isRefusal(choice: SchemaChoice): choice is Refusal {
  return 'code' in choice;
}

/** iotb-validate: parses and validates telemetry (logic in nodes/lib/validate); rejects with reasons. */
export = function register(RED: NodeAPI): void {
  function ValidateNode(this: Node, config: ValidateNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const rules = rulesFrom(config);
    const source: SchemaSource = config.schemaSource ?? 'inline';
    const perDevice = count(config.dedupPerDevice, 100);
    const duplicates =
      perDevice > 0
        ? new DuplicateWindow(perDevice, count(config.dedupDevices, DEFAULT_DEDUP_DEVICES) || 1)
        : undefined;
    let accepted = 0;
    let rejected = 0;
    let problem: string | undefined;
    const status = glue.status((): StatusView =>
      problem
        ? { fill: 'red', shape: 'ring', key: 'status.problem', vars: { problem: problem.slice(0, 60) } }
        : {
            fill: rejected > 0 ? 'yellow' : 'green',
            shape: 'dot',
            key: 'status.counts',
            vars: { accepted, rejected },
          },
    );

    /** Reports a broken or missing schema once, in the status and the log (and so to Catch/Status nodes). */
    const report = (choice: SchemaChoice): SchemaChoice => {
      if (isRefusal(choice) && problem !== choice.reason) {
        problem = choice.reason;
        this.error(`schema problem: ${choice.reason}`);
        status.update();
      }
      return choice;
    };

    // Fixed schemas compile now, so a broken one shows at deploy, not on the first message.
    let fixed: SchemaChoice | undefined;
    if (source === 'inline') {
      fixed = report(compileChoice(config.schema, rules.options, 'inline schema'));
    } else if (source === 'file') {
      fixed = report(
        loadSchemaFile(config.schemaFile ? glue.userFile(config.schemaFile) : '', rules.options),
      );
    }

    // Per-type schemas come from the registry; compiled on first use per type, forgotten when types change.
    const typeSchemas = new Map<string, SchemaChoice>();
    const dir: DeviceDirectory | undefined = glue.optionalConfig('registry', config.registry);
    if (source === 'type') {
      if (dir)
        glue.listen(dir)('types', () => {
          typeSchemas.clear();
          problem = undefined;
          status.update();
        });
      else report({ code: 'NO_SCHEMA', reason: NO_REGISTRY });
    }

    const schemaFor = (msg: NodeMessageInFlow, device: DeviceRef | undefined): SchemaChoice => {
      if (fixed) return fixed;
      if (source === 'msg') {
        const prop = config.schemaProperty || 'schema';
        let schema: unknown;
        try {
          schema = RED.util.getMessageProperty(msg, prop);
        } catch {
          // getMessageProperty throws when a parent on the path is missing: no schema either way.
        }
        if (schema === undefined) {
          return { code: 'NO_SCHEMA', reason: `msg.${prop} holds no schema` };
        }
        return compileChoice(schema, rules.options, `msg.${prop}`);
      }
      if (!dir) return { code: 'NO_SCHEMA', reason: NO_REGISTRY };
      const typeName = device?.type;
      if (typeof typeName !== 'string') {
        return {
          code: 'NO_SCHEMA',
          reason: 'msg.device.type is missing: cannot choose a device type schema',
        };
      }
      let choice = typeSchemas.get(typeName);
      if (!choice) {
        const type = dir.getType(typeName);
        choice =
          type?.schema === undefined
            ? {
                code: 'NO_SCHEMA',
                reason: type
                  ? `device type ${typeName} has no telemetry schema`
                  : `device type ${typeName} is not in the registry`,
              }
            : report(compileChoice(type.schema, rules.options, `device type ${typeName}`));
        typeSchemas.set(typeName, choice);
      }
      return choice;
    };

    const clone = (m: Record<string, unknown>): Record<string, unknown> => RED.util.cloneMessage(m);

    // One context for every message (validatePayload reads it synchronously): nothing allocated per message.
    const ctx: ValidateContext = {
      schema: undefined,
      noSchema: undefined,
      limits: rules.limits,
      window: rules.window,
      now: 0,
      deviceId: undefined,
      duplicates,
      ackId: null,
      acks: ackLedger,
      clock: readingClock,
      tagKeys: rules.tagKeys,
    };
    this.on('input', (msg, send, done) => {
      try {
        ctx.now = Date.now();
        if (isMicroBatch(msg as { device?: unknown })) sendMicroBatch(msg as BatchMessage, send);
        else sendPublication(msg, send);
        status.update();
        done();
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });

    /** One publication: one reading or one device's array of readings. */
    const sendPublication = (msg: NodeMessageInFlow, send: (m: SendArg) => void): void => {
      const device = (msg as { device?: DeviceRef }).device;
      useSchema(ctx, schemaFor(msg, device));
      ctx.deviceId = typeof device?.id === 'string' ? device.id : undefined;
      const ackId = (msg as { ackId?: unknown }).ackId;
      ctx.ackId = typeof ackId === 'number' ? ackId : null;
      const verdict = validatePayload(msg.payload, ctx);
      accepted += verdict.accepted.length;
      rejected += verdict.rejected.length;
      if (verdict.accepted.length === 1 && verdict.rejected.length === 0 && !verdict.batch) {
        // The common case: one valid reading leaves on out 1 as the input message itself. A plain
        // send(msg) lets Node-RED take its single-wire fast path when out 2 is not wired.
        const a = verdict.accepted[0];
        msg.payload = a.fields;
        (msg as Record<string, unknown>).timestamp = a.timestamp;
        (msg as Record<string, unknown>).messageId = a.messageId;
        send(msg);
        return;
      }
      // Every reading and every refusal settles one reference of the publication's acknowledgement.
      addParts(ackLedger, ackId, verdict.accepted.length + verdict.rejected.length);
      send(outputs(RED, msg, verdict, config.split === true, ackId));
    };

    /**
     * A micro-batch (nodes/lib/ingest/micro-batch.ts): every publication against its own device's schema;
     * the valid readings leave as one batch (or one message each when splitting), each refusal alone.
     */
    const sendMicroBatch = (msg: BatchMessage, send: (m: SendArg) => void): void => {
      const payloads = msg.payload;
      if (!Array.isArray(payloads) || payloads.length !== msg.device.length) {
        rejected++;
        refuseMessage(
          msg,
          rejection(
            'validate',
            'BATCH',
            'a micro-batch needs msg.payload as an array of publications parallel to msg.device',
            { devices: msg.device.length },
          ),
        );
        send([null, msg]);
        return;
      }
      // A schema that does not depend on the device is looked up once per batch.
      const shared = source === 'type' ? undefined : schemaFor(msg, undefined);
      const { valid, refused } = validateMicroBatch(
        payloads,
        msg.device,
        msg.ackId,
        ctx,
        (device) => shared ?? schemaFor(msg, device),
        ackLedger,
      );
      accepted += valid.payload.length;
      rejected += refused.length;
      const batch: Record<string, unknown> = msg;
      const bad = refused.map((r) => {
        const out = elementMessage(batch, r.publication, clone);
        out.payload = r.payload;
        out.ackId = r.ackId;
        refuseMessage(out, r.rejection);
        return out;
      });
      let good: NodeMessage | NodeMessage[] | null = null;
      if (valid.payload.length > 0) {
        // The input message carries the batch on: its arrays are replaced, nothing is copied.
        batch.payload = valid.payload;
        batch.device = valid.device;
        batch.ackId = valid.ackId;
        batch.timestamp = valid.timestamp;
        batch.messageId = valid.messageId;
        good =
          config.split === true
            ? valid.payload.map((_, i) => elementMessage(batch, i, clone) as NodeMessage)
            : msg;
      }
      if (bad.length === 0 && good && !Array.isArray(good)) send(good);
      else send([good, bad]);
    };

    function loadSchemaFile(path: string, options: SchemaOptions): SchemaChoice {
      if (!path) return { code: 'NO_SCHEMA', reason: 'no schema file configured' };
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (err) {
        return { code: 'NO_SCHEMA', reason: `schema file ${path}: ${(err as Error).message}` };
      }
      return compileChoice(text, options, `schema file ${path}`);
    }
  }
  RED.nodes.registerType('iotb-validate', ValidateNode);

  // The editor's "test with sample payload": the same rules, nothing counted, nothing sent.
  RED.httpAdmin.post(
    '/iotb-validate/test',
    RED.auth.needsPermission('iotb-validate.write'),
    (
      req: { body?: unknown },
      res: { json(body: unknown): void; status(code: number): { json(b: unknown): void } },
    ) => {
      const body = (req.body ?? {}) as {
        schema?: unknown;
        payload?: unknown;
        config?: Partial<ValidateNodeDef>;
      };
      if (typeof body.payload !== 'string') {
        res.status(400).json({ error: 'payload must be the sample text' });
        return;
      }
      const rules = rulesFrom(body.config ?? {});
      const choice = compileChoice(body.schema, rules.options, 'inline schema');
      if (isRefusal(choice)) {
        res.json({ schemaError: choice.reason });
        return;
      }
      const verdict = validatePayload(body.payload, {
        schema: choice,
        limits: rules.limits,
        window: rules.window,
        now: Date.now(),
        deviceId: 'sample',
        tagKeys: rules.tagKeys,
        count: false,
      });
      res.json(verdict);
    },
  );
};

/**
 * Out 1: the accepted reading(s) in the pipeline's shape; out 2: one message per refusal. The input message
 * is reused when it is the only one leaving; otherwise each leaving message is its own copy.
 */
function outputs(
  RED: NodeAPI,
  msg: NodeMessageInFlow,
  verdict: PayloadVerdict,
  split: boolean,
  ackId: unknown,
): NodeMessage[][] {
  const { accepted, rejected } = verdict;
  const good: NodeMessage[] = [];
  const bad: NodeMessage[] = [];
  const total = (split ? accepted.length : Math.min(accepted.length, 1)) + rejected.length;
  const fresh = (): Record<string, unknown> => {
    if (total === 1) return msg;
    const { payload: _payload, ...rest } = msg;
    return RED.util.cloneMessage(rest);
  };
  if (accepted.length > 0) {
    if (!verdict.batch || split) {
      for (const a of accepted) {
        const out = fresh();
        out.payload = a.fields;
        out.timestamp = a.timestamp;
        out.messageId = a.messageId;
        good.push(out);
      }
    } else {
      const out = fresh();
      out.payload = accepted.map((a) => a.fields);
      out.timestamp = accepted.map((a) => a.timestamp);
      out.messageId = accepted.map((a) => a.messageId);
      // One reference per reading (see sendPublication): the writer settles each element's id.
      if (typeof ackId === 'number') out.ackId = accepted.map(() => ackId);
      good.push(out);
    }
  }
  for (const r of rejected) {
    const out = fresh();
    if (r.index !== undefined) out.payload = r.value;
    else if (total !== 1) out.payload = msg.payload;
    refuseMessage(out, r.rejection);
    bad.push(out);
  }
  answerOnce(msg, good, bad, accepted.length);
  return [good, bad];
}
