/**
 * The Node.js lines the gateway supports, in one place: package.json's `engines`, the Dockerfile's
 * base image, CI's `NODE_LINES`, `@types/node` and the README are held to this list by a test.
 * main.ts loads this module first, so an unsupported Node stops before anything else is loaded.
 */

/** The maintained LTS lines the suite runs on, oldest first; the oldest is the floor. */
export const SUPPORTED_NODE_LINES: readonly number[] = [22, 24, 26];

/** The one line that refuses this Node, or undefined when it is supported. */
export function unsupportedNode(version: string = process.versions.node): string | undefined {
  const oldest = SUPPORTED_NODE_LINES[0]!;
  if (Number(version.split('.')[0]) >= oldest) return undefined;
  const lines = SUPPORTED_NODE_LINES.join(', ');
  return `ollama-otel-gateway: Node.js ${version} is not supported: use Node.js ${oldest} or newer (the LTS lines ${lines} are supported)`;
}

const refusal = unsupportedNode();
if (refusal !== undefined) {
  process.stderr.write(`${refusal}\n`);
  process.exit(1);
}
