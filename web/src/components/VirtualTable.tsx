import type { ComponentChildren, JSX } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { visibleRange, type Range } from "../lib/window";

interface Props {
  testid: string;
  label: string;
  head: ComponentChildren; // the <tr> of the header
  columns: number;
  total: number;
  rowHeight: number;
  row(index: number): JSX.Element; // a <tr> of exactly rowHeight
  onRange?(range: Range): void;
  className?: string;
}

/**
 * A real <table> whose body holds only the rows in view (and a few either side), between two
 * spacer rows that give the scrollbar its full length.
 */
export function VirtualTable({ testid, label, head, columns, total, rowHeight, row, onRange, className }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const frame = useRef(0);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight || 600 });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const range = visibleRange(view.top, view.height, rowHeight, total);
  useEffect(() => {
    onRange?.(range);
  }, [range.start, range.end]);

  const onScroll = () => {
    cancelAnimationFrame(frame.current);
    frame.current = requestAnimationFrame(() => {
      const el = scroller.current;
      if (el) setView({ top: el.scrollTop, height: el.clientHeight || 600 });
    });
  };

  const rows: JSX.Element[] = [];
  for (let i = range.start; i < range.end; i++) rows.push(row(i));
  const before = range.start * rowHeight;
  const after = Math.max(0, (total - range.end) * rowHeight);
  return (
    <div class={`scroller ${className ?? ""}`} ref={scroller} onScroll={onScroll} tabIndex={0} role="region" aria-label={label}>
      <table data-testid={testid} aria-rowcount={total + 1} style={{ "--row": `${rowHeight}px` }}>
        <thead>{head}</thead>
        <tbody>
          {before > 0 && (
            <tr aria-hidden="true" class="spacer" style={{ height: `${before}px` }}>
              <td colSpan={columns} />
            </tr>
          )}
          {rows}
          {after > 0 && (
            <tr aria-hidden="true" class="spacer" style={{ height: `${after}px` }}>
              <td colSpan={columns} />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
