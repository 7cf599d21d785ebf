/**
 * uPlot in React: the chart is (re)built when its data or options change and
 * follows its container's width. Every chart carries a text summary for
 * screen readers (`summary`, read through aria-describedby / the figcaption).
 */
import { useEffect, useId, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartProps {
  /** Builds the options for a given width (height is fixed by the caller). */
  options: (width: number) => uPlot.Options;
  data: uPlot.AlignedData;
  /** Short name of the chart (figure label). */
  label: string;
  /** What the chart shows, in words, for people who cannot see it. */
  summary: string;
  testId?: string;
  className?: string;
  /** Show the summary visibly under the chart. */
  caption?: boolean;
}

export function Chart({ options, data, label, summary, testId, className, caption = true }: ChartProps) {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const captionId = useId();

  useEffect(() => {
    const el = holder.current;
    if (!el) return;
    const width = Math.max(120, el.clientWidth);
    const chart = new uPlot(options(width), data, el);
    plot.current = chart;
    let lastWidth = width;
    const observer = new ResizeObserver((entries) => {
      const w = Math.floor(entries[0]?.contentRect.width ?? lastWidth);
      if (w > 0 && Math.abs(w - lastWidth) > 1) {
        lastWidth = w;
        chart.setSize({ width: w, height: chart.height });
      }
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [options, data]);

  return (
    <figure className={`chart ${className ?? ""}`} data-testid={testId} aria-labelledby={`${captionId}-l`}>
      <span id={`${captionId}-l`} className="visually-hidden">
        {label}
      </span>
      <div ref={holder} className="chart-canvas" role="img" aria-label={`${label}. ${summary}`} />
      <figcaption className={caption ? "chart-caption" : "visually-hidden"}>{summary}</figcaption>
    </figure>
  );
}

/** Reads a CSS custom property of the document (chart colours follow the stylesheet). */
export function cssVar(name: string, fallback: string): string {
  if (typeof document === "undefined") return fallback;
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** ISO time → uPlot's x (seconds). */
export const toX = (iso: string): number => Date.parse(iso) / 1000;

/** A vertical dashed marker at x (e.g. the horizon), drawn on uPlot's canvas. */
export function verticalMarker(x: number, color: string, text: string): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const left = u.valToPos(x, "x", true);
          if (!Number.isFinite(left) || left < u.bbox.left || left > u.bbox.left + u.bbox.width) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = color;
          ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.lineWidth = devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(left, u.bbox.top);
          ctx.lineTo(left, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillStyle = color;
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          ctx.textAlign = "right";
          ctx.fillText(text, left - 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
          ctx.restore();
        },
      ],
    },
  };
}
