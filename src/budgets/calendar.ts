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

/** The instant whose wall-clock time in `tz` is `wall` (epoch ms as if UTC); in a gap, the first after. */
function instantOf(wall: number, tz: string): number {
  // The offset at the guess, then at the corrected guess: right on either side of a change.
  let t = wall - (wallClock(wall, tz) - wall);
  t = wall - (wallClock(t, tz) - t);
  return t;
}

export type CalendarKind = 'day' | 'month';

/** When the local day or month holding `now` began, in `tz`. */
export function windowStart(kind: CalendarKind, now: number, tz: string): number {
  const wall = new Date(wallClock(now, tz));
  const y = wall.getUTCFullYear();
  const m = wall.getUTCMonth();
  return instantOf(kind === 'day' ? Date.UTC(y, m, wall.getUTCDate()) : Date.UTC(y, m, 1), tz);
}

/** When the next local day or month after the one holding `now` begins, in `tz`. */
export function windowEnd(kind: CalendarKind, now: number, tz: string): number {
  const wall = new Date(wallClock(now, tz));
  const y = wall.getUTCFullYear();
  const m = wall.getUTCMonth();
  return instantOf(kind === 'day' ? Date.UTC(y, m, wall.getUTCDate() + 1) : Date.UTC(y, m + 1, 1), tz);
}
