import { afterEach, describe, expect, it } from 'vitest';
import { cutoffBefore, formatAge, parseDuration, parseInstant, type Duration } from '../../src/model/duration.js';
import { UsageError } from '../../src/model/errors.js';

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError, nothing was thrown');
}

const NOT_A_DURATION =
  'not a duration; use a whole number and a unit: minutes (m), hours (h), days (d), weeks (w), months (mo), years (y), e.g. 30d';

describe('parseDuration', () => {
  const good: Array<[text: string, amount: number, unit: Duration['unit'], normalized: string]> = [
    ['90m', 90, 'm', '90m'],
    ['12h', 12, 'h', '12h'],
    ['30d', 30, 'd', '30d'],
    ['2w', 2, 'w', '2w'],
    ['6mo', 6, 'mo', '6mo'],
    ['1y', 1, 'y', '1y'],
    [' 30d ', 30, 'd', '30d'],
    ['030d', 30, 'd', '30d'],
  ];
  it.each(good)('%j -> %d %s', (text, amount, unit, normalized) => {
    expect(parseDuration(text)).toEqual({ amount, unit, text: normalized });
  });

  const bad: Array<[name: string, text: string, message: string]> = [
    ['unknown unit', '30x', `--older-than "30x": ${NOT_A_DURATION}`],
    ['negative', '-5d', `--older-than "-5d": ${NOT_A_DURATION}`],
    ['zero', '0d', '--older-than "0d": the amount must be a positive whole number'],
    ['unit without amount', 'd', `--older-than "d": ${NOT_A_DURATION}`],
    ['amount without unit', '30', `--older-than "30": ${NOT_A_DURATION}`],
    ['fraction', '1.5d', `--older-than "1.5d": ${NOT_A_DURATION}`],
    ['uppercase unit', '30D', `--older-than "30D": ${NOT_A_DURATION}`],
    ['space inside', '30 d', `--older-than "30 d": ${NOT_A_DURATION}`],
    ['empty', '', `--older-than "": ${NOT_A_DURATION}`],
    ['beyond safe integers', '99999999999999999999d', '--older-than "99999999999999999999d": the amount must be a positive whole number'],
  ];
  it.each(bad)('%s: %j', (_name, text, message) => {
    expect(usageMessage(() => parseDuration(text))).toBe(message);
  });

  it('names the argument it was given', () => {
    expect(usageMessage(() => parseDuration('30x', 'policy max-age'))).toBe(`policy max-age "30x": ${NOT_A_DURATION}`);
  });
});

describe('cutoffBefore', () => {
  const cases: Array<[name: string, now: string, duration: string, cutoff: string]> = [
    ['minutes', '2026-11-23T12:00:00Z', '90m', '2026-11-23T10:30:00.000Z'],
    ['hours', '2026-11-23T12:00:00Z', '12h', '2026-11-23T00:00:00.000Z'],
    ['days', '2026-11-23T12:00:00Z', '30d', '2026-10-24T12:00:00.000Z'],
    ['weeks', '2026-11-23T12:00:00Z', '2w', '2026-11-09T12:00:00.000Z'],
    ['calendar month, clamped to the end of February', '2026-03-31T12:00:00Z', '1mo', '2026-02-28T12:00:00.000Z'],
    ['calendar month, leap year', '2028-03-31T12:00:00Z', '1mo', '2028-02-29T12:00:00.000Z'],
    ['calendar months across a year', '2026-01-15T00:00:00Z', '6mo', '2025-07-15T00:00:00.000Z'],
    ['calendar year from 29 February', '2028-02-29T08:00:00Z', '1y', '2027-02-28T08:00:00.000Z'],
  ];
  it.each(cases)('%s: %s - %s', (_name, now, duration, cutoff) => {
    expect(cutoffBefore(new Date(now), parseDuration(duration)).toISOString()).toBe(cutoff);
  });

  // The cutoff decides what is deleted: it must not depend on the machine's time zone.
  describe('in a time zone with DST (America/Los_Angeles)', () => {
    const saved = process.env.TZ;
    afterEach(() => {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    });
    const zoned: Array<[name: string, now: string, duration: string, cutoff: string]> = [
      ['1mo where the local date is a day earlier than UTC', '2026-03-31T02:00:00Z', '1mo', '2026-02-28T02:00:00.000Z'],
      ['2d across the spring-forward switch is 48 hours', '2026-03-09T12:00:00Z', '2d', '2026-03-07T12:00:00.000Z'],
      ['1y', '2026-07-01T03:00:00Z', '1y', '2025-07-01T03:00:00.000Z'],
    ];
    it.each(zoned)('%s', (_name, now, duration, cutoff) => {
      process.env.TZ = 'America/Los_Angeles';
      expect(new Date('2026-07-01T00:00:00Z').getTimezoneOffset()).toBe(420);
      expect(cutoffBefore(new Date(now), parseDuration(duration)).toISOString()).toBe(cutoff);
    });
  });
});

describe('parseInstant', () => {
  const good: Array<[name: string, text: string, iso: string]> = [
    ['bare date is 00:00 UTC', '2026-09-01', '2026-09-01T00:00:00.000Z'],
    ['date-time in UTC', '2026-09-01T12:00:00Z', '2026-09-01T12:00:00.000Z'],
    ['date-time without zone is UTC', '2026-09-01T12:00', '2026-09-01T12:00:00.000Z'],
    ['space instead of T', '2026-09-01 12:00:30', '2026-09-01T12:00:30.000Z'],
    ['offset', '2026-09-01T12:00:00+02:00', '2026-09-01T10:00:00.000Z'],
    ['fractional seconds', '2026-09-01T12:00:00.250Z', '2026-09-01T12:00:00.250Z'],
    ['surrounding spaces', ' 2026-09-01 ', '2026-09-01T00:00:00.000Z'],
    ['29 February in a leap year', '2028-02-29', '2028-02-29T00:00:00.000Z'],
  ];
  it.each(good)('%s: %j', (_name, text, iso) => {
    expect(parseInstant(text).toISOString()).toBe(iso);
  });

  const FORMAT = 'not an ISO 8601 date, e.g. 2026-09-01 or 2026-09-01T12:00:00Z';
  const bad: Array<[name: string, text: string, message: string]> = [
    ['relative', 'yesterday', `--before "yesterday": ${FORMAT}`],
    ['day first', '01-09-2026', `--before "01-09-2026": ${FORMAT}`],
    ['month 13', '2026-13-01', '--before "2026-13-01": not a valid date'],
    ['30 February', '2026-02-30', '--before "2026-02-30": not a valid date'],
    ['29 February in a common year', '2026-02-29', '--before "2026-02-29": not a valid date'],
    ['31 April', '2026-04-31T10:00:00Z', '--before "2026-04-31T10:00:00Z": not a valid date'],
    ['hour 24', '2026-09-01T24:00:00Z', '--before "2026-09-01T24:00:00Z": not a valid date'],
    ['minute 60', '2026-09-01T12:60Z', '--before "2026-09-01T12:60Z": not a valid date'],
  ];
  it.each(bad)('%s: %j', (_name, text, message) => {
    expect(usageMessage(() => parseInstant(text))).toBe(message);
  });
});

describe('formatAge', () => {
  const MIN = 60_000;
  const HOUR = 60 * MIN;
  const DAY = 24 * HOUR;
  const cases: Array<[ms: number, text: string]> = [
    [-5 * MIN, '0m'],
    [0, '0m'],
    [59 * MIN + 59_999, '59m'],
    [HOUR, '1h'],
    [47 * HOUR + 59 * MIN, '47h'],
    [48 * HOUR, '2d'],
    [59 * DAY, '59d'],
    [60 * DAY, '1mo'],
    [92 * DAY, '3mo'],
    [729 * DAY, '23mo'],
    [730 * DAY, '1y'],
    [1100 * DAY, '3y'],
  ];
  it.each(cases)('%d ms -> %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });
});
