/**
 * Where a shipped flow's nodes sit on the editor canvas, approximated without a browser, so a test can check
 * that no two overlap and every node is inside its group's box.
 *
 * Node-RED's editor (packages/node_modules/@node-red/editor-client/src/js/ui/view.js, 4.1) sizes a node as
 *   w = max(100, 20 * ceil((labelWidth + 50 + (inputs > 0 ? 7 : 0)) / 20)),  h = max(30, 6 + 24 * lines, 15 * outputs)
 * with labelWidth measured in the browser for the class `red-ui-flow-node-label` (14px Helvetica Neue, Arial,
 * or the system's sans-serif);
 * a node whose label is hidden (link nodes by default) is 30 × 30; x/y in the flow file are the node's centre.
 * inject and debug draw a 20 px button beside the box. A group's box is its nodes' boxes plus a 26 px margin
 * (view.js, redrawGroups). labelWidth here comes from DejaVu Sans' advance widths at 14 px (the widest of
 * the fonts the editor falls back to), rounded up; test/editor/backend-flow.test.ts compares the result with
 * the boxes the real editor draws in Chromium.
 */

export type FlowNode = { id: string; type: string; [k: string]: unknown };

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Node types that are not drawn as a node on a tab's canvas. */
export function isCanvasNode(n: FlowNode): boolean {
  return typeof n.z === 'string' && n.type !== 'tab' && n.type !== 'group' && typeof n.x === 'number';
}

// Advance widths of DejaVu Sans (what Chromium draws on a Linux machine without Helvetica or Arial), in
// thousandths of an em. It is wider than Arial and Helvetica, so a layout that fits with it fits with those.
const EM: Record<string, number> = {
  ' ': 318,
  a: 613,
  b: 635,
  c: 550,
  d: 635,
  e: 615,
  f: 352,
  g: 635,
  h: 634,
  i: 278,
  j: 278,
  k: 579,
  l: 278,
  m: 974,
  n: 634,
  o: 612,
  p: 635,
  q: 635,
  r: 411,
  s: 521,
  t: 392,
  u: 634,
  v: 592,
  w: 818,
  x: 592,
  y: 592,
  z: 525,
  A: 684,
  B: 686,
  C: 698,
  D: 770,
  E: 632,
  F: 575,
  G: 775,
  H: 752,
  I: 295,
  J: 295,
  K: 656,
  L: 557,
  M: 863,
  N: 748,
  O: 787,
  P: 603,
  Q: 787,
  R: 695,
  S: 635,
  T: 611,
  U: 732,
  V: 684,
  W: 989,
  X: 685,
  Y: 611,
  Z: 685,
  '.': 318,
  ',': 318,
  ':': 337,
  ';': 337,
  '/': 337,
  '\\': 337,
  '-': 361,
  '(': 390,
  ')': 390,
  '[': 390,
  ']': 390,
  '{': 636,
  '}': 636,
  _: 500,
  '>': 838,
  '<': 838,
  '=': 838,
  '+': 838,
  '?': 531,
  '!': 400,
  "'": 275,
  '"': 460,
  '*': 500,
  '&': 780,
  '@': 1000,
  '#': 838,
  '|': 337,
  '%': 950,
  $: 636,
  '~': 838,
  '·': 318,
  '…': 1000,
  '→': 838,
  '°': 500,
};

/** The width of a label in px as the editor draws it at 14 px (from DejaVu Sans' metrics, rounded up). */
export function labelWidth(label: string): number {
  let em = 0;
  for (const c of label) em += EM[c] ?? (c >= '0' && c <= '9' ? 636 : 1000);
  return Math.ceil((em * 14) / 1000);
}

const NO_INPUT = new Set([
  'http in',
  'inject',
  'catch',
  'status',
  'complete',
  'link in',
  'comment',
  'iotb-device-in',
  'iotb-mqtt-in',
]);

const AUTH_MODES: Record<string, string> = {
  bearer: 'device token (Bearer)',
  signed: 'signed body',
  apiKey: 'operator API key',
};

/** A node property as text (flow files hold strings, numbers or booleans here). */
function text(v: unknown, dflt = ''): string {
  if (v === undefined || v === null || v === '') return dflt;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The label the editor shows for a node: its name, or its type's label function for the common cases. */
export function nodeLabel(n: FlowNode): string {
  const name = typeof n.name === 'string' ? n.name : '';
  if (name) return name;
  switch (n.type) {
    case 'http in':
      return `[${text(n.method)}] ${text(n.url)}`;
    case 'http response':
      return n.statusCode ? `http (${text(n.statusCode)})` : 'http';
    case 'iotb-auth':
      return `auth: ${AUTH_MODES[text(n.mode, 'bearer')] ?? text(n.mode)}`;
    case 'iotb-provision':
      return n.operation && n.operation !== 'msg' ? `provision: ${text(n.operation)}` : 'provision';
    case 'iotb-device-in':
      return 'device in';
    case 'iotb-influx-write':
      return 'influx write';
    case 'iotb-influx-query':
      return 'influx query';
    case 'iotb-mqtt-in':
      return `mqtt in: ${text(n.topicPrefix, 'devices')}/+/telemetry`;
    case 'debug':
      return n.complete === 'true' ? 'msg' : `msg.${text(n.complete, 'payload')}`;
    case 'catch':
      return Array.isArray(n.scope) ? `catch: ${n.scope.length}` : 'catch: all';
    case 'inject':
      // Core's label for an unnamed inject is its payload or topic; the timestamp shown at most.
      return typeof n.topic === 'string' && n.topic ? n.topic : 'timestamp';
    default:
      return n.type.replace(/^iotb-/, '');
  }
}

/** Whether the editor draws the node with its label (link nodes hide it unless `l` is true). */
function labelShown(n: FlowNode): boolean {
  if (n.l === false) return false;
  if (n.type === 'link in' || n.type === 'link out' || n.type === 'link call') return n.l === true;
  return true;
}

/** The node's box on the canvas (without the inject/debug button). */
export function nodeBox(n: FlowNode): Box {
  const x = n.x as number;
  const y = n.y as number;
  const outputs = Array.isArray(n.wires) ? n.wires.length : 0;
  let w: number;
  let h: number;
  if (!labelShown(n)) {
    w = 30;
    h = Math.max(30, outputs * 15);
  } else {
    const lines = nodeLabel(n).split('\\n ');
    const text = Math.max(...lines.map(labelWidth));
    w = Math.max(100, 20 * Math.ceil((text + 50 + (NO_INPUT.has(n.type) ? 0 : 7)) / 20));
    h = Math.max(30, 6 + 24 * lines.length, outputs * 15);
  }
  return { x0: x - w / 2, y0: y - h / 2, x1: x + w / 2, y1: y + h / 2 };
}

/** Types that draw a status line (up to ~20 px) under the node; nothing else may sit there. */
const NO_STATUS = new Set([
  'http in',
  'http response',
  'change',
  'switch',
  'comment',
  'link in',
  'link out',
  'catch',
  'template',
  'inject',
]);

/** The node's box plus its button and the status line under it: the space nothing else may use. */
export function nodeFootprint(n: FlowNode): Box {
  const b = nodeBox(n);
  if (n.type === 'inject') b.x0 -= 20;
  if (n.type === 'debug') b.x1 += 20;
  if (!NO_STATUS.has(n.type) && (n.type !== 'debug' || n.tostatus === true)) b.y1 += 20;
  return b;
}

export function overlaps(a: Box, b: Box): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

export function contains(outer: Box, inner: Box): boolean {
  return outer.x0 <= inner.x0 && outer.y0 <= inner.y0 && outer.x1 >= inner.x1 && outer.y1 >= inner.y1;
}

export const GROUP_MARGIN = 26;

/** A group node's stored box. */
export function groupBox(g: FlowNode): Box {
  const x = g.x as number;
  const y = g.y as number;
  return { x0: x, y0: y, x1: x + (g.w as number), y1: y + (g.h as number) };
}
