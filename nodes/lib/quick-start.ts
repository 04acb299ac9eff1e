/**
 * The README's quick-start example (provision a device, publish a reading, read it back) is the one source of
 * those commands: `npm start` prints it with this machine's ports, and a test runs it as written.
 */

const MARKER = '<!-- quick-start-example -->';

/** The shell commands of the fenced block that follows the marker in `readme`. */
export function quickStartBlock(readme: string): string {
  const at = readme.indexOf(MARKER);
  if (at < 0) throw new Error(`README.md has no ${MARKER} marker`);
  const block = /```(?:sh|bash)\n([\s\S]*?)```/.exec(readme.slice(at + MARKER.length));
  if (!block?.[1]) throw new Error(`README.md has no sh block after ${MARKER}`);
  return block[1].trimEnd();
}

/** The block's commands one by one: a line ending in a backslash continues on the next. */
export function quickStartCommands(readme: string): string[] {
  const commands: string[] = [];
  let current = '';
  for (const line of quickStartBlock(readme).split('\n')) {
    current = current ? `${current}\n${line}` : line;
    if (!line.endsWith('\\')) {
      if (current.trim() && !current.trim().startsWith('#')) commands.push(current);
      current = '';
    }
  }
  return commands;
}

/** The block with `${NAME:-default}` replaced by `values[NAME]` where given (the ports of this start). */
export function quickStartExample(readme: string, values: Record<string, string | undefined>): string {
  return quickStartBlock(readme).replace(
    /\$\{([A-Z_]+):-([^}]*)\}/g,
    (all, name: string) => values[name] ?? all,
  );
}
