/**
 * Who a client is, for the limits one client may not pass alone (connections, request-body
 * memory): its address, with an IPv4 address written as IPv6 (`::ffff:a.b.c.d`) taken as the IPv4
 * one, and an IPv6 address taken as its /64 prefix, since one host is usually given a whole /64
 * and could otherwise take a new address for each connection.
 */
import net from 'node:net';

/** The key of `address` (a socket's `remoteAddress`); `unknown` when there is none. */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!net.isIPv6(address)) return address;
  return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const bare = address.split('%')[0];
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::1.2.3.4) is two groups.
  const expand = (parts: string[]): string[] =>
    parts.flatMap((p) => (p.includes('.') ? ipv4Groups(p) : [p]));
  const l = expand(left);
  const r = expand(right);
  const fill = tail === undefined ? [] : Array<string>(8 - l.length - r.length).fill('0');
  return [...l, ...fill, ...r].map((g) => parseInt(g, 16).toString(16));
}

function ipv4Groups(v4: string): string[] {
  const b = v4.split('.').map(Number);
  return [((b[0] << 8) | b[1]).toString(16), ((b[2] << 8) | b[3]).toString(16)];
}
