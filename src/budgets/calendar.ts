/**
 * Calendar windows in a time zone: when the local day or month that holds an instant began, and
 * when the next begins, as epoch milliseconds. Pure; the zone's rules are Node's (Intl, ICU).
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The local wall-clock time of instant `t` in `tz`, as if it were UTC (epoch ms, whole seconds). */
function wallClock(t: number, tz: string): number {
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(t)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

const HOUR_MS = 3_600_000;

/** How far `tz`'s clocks are ahead of UTC at instant `t` (whole seconds). */
const offsetAt = (t: number, tz: string): number => wallClock(t, tz) - t;

/**
 * The instant whose wall-clock time in `tz` is `wall` (epoch ms as if UTC, whole seconds). When the
 * clocks went back over it (it happened twice), the first; when they jumped over it (it never
 * happened: Chile and Lebanon skip midnight), the moment of the jump, as Temporal's "compatible"
 * reading gives.
 */
function instantOf(wall: number, tz: string): number {
  // Offsets lie within -12 h … +14 h, so the instant lies within [wall - 14 h, wall + 12 h]; the
  // offsets just outside that span are the ones before and after any change inside it.
  const early = offsetAt(wall - 15 * HOUR_MS, tz);
  const late = offsetAt(wall + 13 * HOUR_MS, tz);
  if (early === late) return wall - early;
  const valid = [wall - early, wall - late].filter((t) => wallClock(t, tz) === wall);
  if (valid.length > 0) return Math.min(...valid);
  // A gap: the clock read `wall` at no instant. Read with the offset before the jump, it names
  // the instant the clocks jumped (or as far after it as `wall` lies inside the gap).
  return wall - Math.min(early, late);
}

export type CalendarKind = 'day' | 'month';

interface Span {
  start: number;
  end: number;
}

/**
 * The window last computed per kind and zone: each Intl reading costs tens of microseconds, and
 * every arrival of a limited tenant asks, so a window is computed once and reused while `now` is
 * inside it. Keys are bounded by the zones Intl knows.
 */
const spans = new Map<string, Span>();

function span(kind: CalendarKind, now: number, tz: string): Span {
  const key = `${kind} ${tz}`;
  const known = spans.get(key);
  if (known && now >= known.start && now < known.end) return known;
  const wall = new Date(wallClock(now, tz));
  const y = wall.getUTCFullYear();
  const m = wall.getUTCMonth();
  const d = wall.getUTCDate();
  const s: Span =
    kind === 'day'
      ? { start: instantOf(Date.UTC(y, m, d), tz), end: instantOf(Date.UTC(y, m, d + 1), tz) }
      : { start: instantOf(Date.UTC(y, m, 1), tz), end: instantOf(Date.UTC(y, m + 1, 1), tz) };
  spans.set(key, s);
  return s;
}

/** When the local day or month holding `now` began, in `tz`. */
export function windowStart(kind: CalendarKind, now: number, tz: string): number {
  return span(kind, now, tz).start;
}

/** When the next local day or month after the one holding `now` begins, in `tz`. */
export function windowEnd(kind: CalendarKind, now: number, tz: string): number {
  return span(kind, now, tz).end;
}
