import { UsageError } from './errors.js';

export type DurationUnit = 'm' | 'h' | 'd' | 'w' | 'mo' | 'y';

/** A push-age threshold such as `30d`; months and years are calendar units. */
export interface Duration {
  readonly amount: number;
  readonly unit: DurationUnit;
  readonly text: string;
}

const DURATION = /^(\d+)(mo|m|h|d|w|y)$/;
const UNIT_WORDS: Record<DurationUnit, string> = {
  m: 'minutes (m)',
  h: 'hours (h)',
  d: 'days (d)',
  w: 'weeks (w)',
  mo: 'months (mo)',
  y: 'years (y)',
};

export function parseDuration(text: string, what = '--older-than'): Duration {
  const match = DURATION.exec(text.trim());
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new UsageError(
      `${what} ${JSON.stringify(text)}: not a duration; use a whole number and a unit: ${Object.values(UNIT_WORDS).join(', ')}, e.g. 30d`,
    );
  }
  const amount = Number(match[1]);
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new UsageError(`${what} ${JSON.stringify(text)}: the amount must be a positive whole number`);
  }
  return { amount, unit: match[2] as DurationUnit, text: `${amount}${match[2]}` };
}

const MINUTE = 60_000;
const FIXED_MS: Partial<Record<DurationUnit, number>> = { m: MINUTE, h: 60 * MINUTE, d: 1440 * MINUTE, w: 7 * 1440 * MINUTE };

function daysInMonthUTC(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/**
 * The instant `duration` before `now`. Months and years are calendar units,
 * clamped to the end of a shorter month (31 March - 1mo = 28 February), and
 * everything is computed in UTC: the cutoff decides what is deleted, so it
 * must not move with the machine's time zone or its DST switches.
 */
export function cutoffBefore(now: Date, duration: Duration): Date {
  const fixed = FIXED_MS[duration.unit];
  if (fixed !== undefined) return new Date(now.getTime() - duration.amount * fixed);
  const months = duration.unit === 'y' ? duration.amount * 12 : duration.amount;
  const total = now.getUTCFullYear() * 12 + now.getUTCMonth() - months;
  const year = Math.floor(total / 12);
  const month = total - year * 12;
  const day = Math.min(now.getUTCDate(), daysInMonthUTC(year, month));
  const out = new Date(now.getTime());
  out.setUTCFullYear(year, month, day);
  return out;
}

const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** `--before` takes an ISO 8601 date or date-time; a bare date means 00:00 UTC. */
export function parseInstant(text: string, what = '--before'): Date {
  const trimmed = text.trim();
  const m = ISO_DATE.exec(trimmed);
  if (m === null) {
    throw new UsageError(`${what} ${JSON.stringify(text)}: not an ISO 8601 date, e.g. 2026-09-01 or 2026-09-01T12:00:00Z`);
  }
  // Date.parse rolls 2026-02-30 over to 2 March and T24:00 to the next day; refuse instead.
  const field = (i: number) => Number(m[i] ?? 0);
  const [year, month, day, hour, minute, second] = [field(1), field(2), field(3), field(4), field(5), field(6)];
  const invalid = () => new UsageError(`${what} ${JSON.stringify(text)}: not a valid date`);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonthUTC(year, month - 1)) throw invalid();
  if (hour > 23 || minute > 59 || second > 59) throw invalid();
  const date = new Date(m[4] === undefined ? `${trimmed}T00:00:00Z` : m[7] === undefined ? `${trimmed}Z` : trimmed);
  if (Number.isNaN(date.getTime())) throw invalid();
  return date;
}

/** Human age: `45m`, `7h`, `12d`, `3mo`, `2y`. */
export function formatAge(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 60) return `${days}d`;
  if (days < 730) return `${Math.floor(days / 30.44)}mo`;
  return `${Math.floor(days / 365.25)}y`;
}
