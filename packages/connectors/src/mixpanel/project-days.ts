/**
 * Calendar days in a Mixpanel project's time zone. Mixpanel stores and buckets
 * events by the project's time zone (project settings; the Query API's
 * `from_date`, `to_date` and the dates of its answers are days there), so a
 * window of instants becomes a range of that zone's days, and a daily point
 * is dated at the instant its day ends there.
 */

const DAY_MS = 86_400_000;

/** Whether `zone` is an IANA time zone name this runtime knows (e.g. `Europe/Paris`, `UTC`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The wall clock of `zone` at `instantMs`, read as if it were UTC (epoch ms). */
function wallClockMs(zone: string, instantMs: number): number {
  const parts: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(new Date(instantMs))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
}

/** The day (`yyyy-mm-dd`) of `zone` that `instant` falls on. */
export function dayIn(zone: string, instant: Date): string {
  const ms = instant.getTime();
  return new Date(wallClockMs(zone, ms - (ms % 1000))).toISOString().slice(0, 10);
}

/** The day after `day` (`yyyy-mm-dd`). */
function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

/** The day before `day` (`yyyy-mm-dd`). */
export function previousDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - DAY_MS).toISOString().slice(0, 10);
}

/**
 * The instant `day` (`yyyy-mm-dd`) starts in `zone`: its local midnight, or,
 * on a day whose midnight a DST change skips, the first instant of that day.
 *
 * @example startOfDay("America/New_York", "2026-11-09") // 2026-11-09T05:00:00.000Z
 */
export function startOfDay(zone: string, day: string): Date {
  const wall = Date.parse(`${day}T00:00:00Z`);
  // The zone's offset near that wall time, applied twice: right on both sides of a DST change.
  let instant = wall - (wallClockMs(zone, wall) - wall);
  instant = wall - (wallClockMs(zone, instant) - instant);
  if (dayIn(zone, new Date(instant)) !== day) instant += 3_600_000;
  return new Date(instant);
}

/** The instant `day` ends in `zone`: the start of the next day. */
export function endOfDay(zone: string, day: string): Date {
  return startOfDay(zone, nextDay(day));
}

/** The days from `first` to `last` (`yyyy-mm-dd`), both included, in order. */
export function daysFrom(first: string, last: string): string[] {
  const days: string[] = [];
  for (let day = first; day <= last; day = nextDay(day)) days.push(day);
  return days;
}
