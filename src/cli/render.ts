import { formatAge } from '../model/duration.js';
import type { StorageWarning } from '../storage/warnings.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> `1.5 KiB`; exact bytes stay in the JSON. */
export function humanBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

export interface TableOptions {
  /** Numeric columns (by index), right-aligned. */
  readonly rightAligned?: readonly number[];
  /** Fit this many columns by cutting the widest of `shrinkable` (a cut cell ends in `~`). */
  readonly width?: number;
  readonly shrinkable?: readonly number[];
  /** No header line (for scripts: `--no-headers`). */
  readonly noHeaders?: boolean;
}

/** The width tables fit by default (`--no-trunc` lifts it). */
export const TABLE_WIDTH = 100;

/** Left-aligned columns; numeric columns (by index) right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], rightAlignedOrOptions: readonly number[] | TableOptions = []): string {
  const o: TableOptions = Array.isArray(rightAlignedOrOptions) ? { rightAligned: rightAlignedOrOptions as readonly number[] } : (rightAlignedOrOptions as TableOptions);
  const rightAligned = o.rightAligned ?? [];
  const widths = headers.map((h, i) => Math.max(o.noHeaders === true ? 0 : h.length, ...rows.map((r) => (r[i] ?? '').length)));
  if (o.width !== undefined && o.shrinkable !== undefined && o.shrinkable.length > 0) {
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    // The widest shrinkable column gives a character at a time, down to its header's width (and at least 8).
    while (total() > o.width) {
      let widest = -1;
      for (const i of o.shrinkable) {
        const floor = Math.max(8, (headers[i] ?? '').length);
        if ((widths[i] ?? 0) > floor && (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))) widest = i;
      }
      if (widest < 0) break;
      widths[widest] = (widths[widest] ?? 0) - 1;
    }
  }
  const cut = (c: string, w: number) => (c.length > w ? `${c.slice(0, Math.max(0, w - 1))}~` : c);
  const line = (cells: readonly string[]) =>
    cells
      .map((raw, i) => {
        const w = widths[i] ?? 0;
        const c = cut(raw, w);
        if (i === cells.length - 1 && !rightAligned.includes(i)) return c;
        return rightAligned.includes(i) ? c.padStart(w) : c.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  const body = rows.map(line);
  return [...(o.noHeaders === true ? [] : [line(headers)]), ...body].join('\n') + (body.length > 0 || o.noHeaders !== true ? '\n' : '');
}

/** `sha256:` and the first 12 hex digits, as docker shows image ids; the full digest with --no-trunc. */
export function digestCell(digest: string, full = false): string {
  return full ? digest : digest.slice(0, 19);
}

/** `2026-09-01 (83d)`. */
export function pushedCell(pushedAtIso: string, now: Date): string {
  const at = new Date(pushedAtIso);
  return `${pushedAtIso.slice(0, 10)} (${formatAge(now.getTime() - at.getTime())})`;
}

export function bar(fraction: number, width = 20): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return '#'.repeat(n).padEnd(width, '.');
}

export function warningLine(w: StorageWarning): string {
  return `warning: ${w.path}: ${w.message}\n`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
