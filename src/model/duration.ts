import { sub } from 'date-fns';
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

/** The instant `duration` before `now` (calendar arithmetic for months and years). */
export function cutoffBefore(now: Date, duration: Duration): Date {
  switch (duration.unit) {
    case 'm':
      return sub(now, { minutes: duration.amount });
    case 'h':
      return sub(now, { hours: duration.amount });
    case 'd':
      return sub(now, { days: duration.amount });
    case 'w':
      return sub(now, { weeks: duration.amount });
    case 'mo':
      return sub(now, { months: duration.amount });
    case 'y':
      return sub(now, { years: duration.amount });
  }
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** `--before` takes an ISO 8601 date or date-time; a bare date means 00:00 UTC. */
export function parseInstant(text: string, what = '--before'): Date {
  const trimmed = text.trim();
  if (!ISO_DATE.test(trimmed)) {
    throw new UsageError(`${what} ${JSON.stringify(text)}: not an ISO 8601 date, e.g. 2026-09-01 or 2026-09-01T12:00:00Z`);
  }
  const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/.test(trimmed) && trimmed.length > 10;
  const date = new Date(trimmed.length === 10 ? `${trimmed}T00:00:00Z` : hasZone ? trimmed : `${trimmed}Z`);
  if (Number.isNaN(date.getTime())) throw new UsageError(`${what} ${JSON.stringify(text)}: not a valid date`);
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
