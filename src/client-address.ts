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
  if (mapped?.[1]) return mapped[1];
  if (!net.isIPv6(address)) return address;
  return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const bare = address.split('%')[0] ?? address;
  const gap = bare.indexOf('::');
  const head = gap === -1 ? bare : bare.slice(0, gap);
  const tail = gap === -1 ? undefined : bare.slice(gap + 2);
  // An embedded IPv4 tail (::1.2.3.4) is two groups.
  const expand = (part: string | undefined): string[] =>
    part === undefined || part === '' ? [] : part.split(':').flatMap((p) => (p.includes('.') ? ipv4Groups(p) : [p]));
  const l = expand(head);
  const r = expand(tail);
  const fill = tail === undefined ? [] : Array<string>(8 - l.length - r.length).fill('0');
  return [...l, ...fill, ...r].map((g) => parseInt(g, 16).toString(16));
}

function ipv4Groups(v4: string): string[] {
  const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}
