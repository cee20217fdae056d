/**
 * When the gateway cannot reach Ollama at start, the likely fix in one sentence: the usual causes
 * are a container whose `host.docker.internal` does not resolve (Linux needs `--add-host`), an
 * Ollama that listens on its own loopback only, or a `127.0.0.1` that inside a container is the
 * container itself.
 */
import { existsSync } from 'node:fs';

/** The start-up line for an Ollama that does not answer (the first poll's, or main's when polling is off). */
export const NOT_REACHABLE_YET = 'Ollama is not reachable yet; serving anyway, requests will get 502 until it is';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Whether this process runs in a container (Docker and Podman leave these files). */
function inContainer(): boolean {
  return existsSync('/.dockerenv') || existsSync('/run/.containerenv');
}

/** The likely fix for `code` (ECONNREFUSED, ENOTFOUND, …) on the way to `hostname`; undefined when there is no good guess. */
export function reachHint(hostname: string, socketPath: string | undefined, code: string | undefined, container = inContainer()): string | undefined {
  if (socketPath !== undefined) return code === 'ENOENT' || code === 'ECONNREFUSED' ? `is Ollama listening on ${socketPath}?` : undefined;
  const host = hostname.toLowerCase();
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    if (host === 'host.docker.internal') {
      return 'on Linux, start the container with --add-host=host.docker.internal:host-gateway (Docker Desktop defines the name itself)';
    }
    return `check the host name in OLLAMA_HOST (${hostname} does not resolve from here)`;
  }
  if (code === 'ECONNREFUSED') {
    if (LOOPBACK.has(host) && container) {
      return 'inside a container 127.0.0.1 is the container itself: set OLLAMA_HOST=http://host.docker.internal:11434 (on Linux also --add-host=host.docker.internal:host-gateway)';
    }
    if (LOOPBACK.has(host)) return 'is Ollama running? start it with `ollama serve` (or the Ollama app), or set OLLAMA_HOST to where it listens';
    return 'is Ollama running there, listening beyond its own loopback? start it with OLLAMA_HOST=0.0.0.0 ollama serve (or set OLLAMA_HOST=0.0.0.0 in its service), and check the port';
  }
  if (code === 'ETIMEDOUT') return 'a firewall may be dropping the connection, or the address is wrong';
  return undefined;
}
