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

/** Left-aligned columns; numeric columns (by index) right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly number[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => {
        const w = widths[i] ?? 0;
        if (i === cells.length - 1 && !rightAligned.includes(i)) return c;
        return rightAligned.includes(i) ? c.padStart(w) : c.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
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
