// Charts in TradingView's style (lightweight-charts): candles with trade markers, equity curves, and
// tiny SVG sparklines for tables.

import {
  createChart, CandlestickSeries, HistogramSeries, AreaSeries, createSeriesMarkers, ColorType,
} from "/vendor/lightweight-charts/lightweight-charts.esm.production.js";
import { msToSeconds as sec } from "./time.js";

export const UP = "#26a69a";
export const DOWN = "#ef5350";

const BASE = {
  autoSize: true,
  layout: {
    background: { type: ColorType.Solid, color: "#131722" }, textColor: "#b2b5be", fontSize: 12,
    // The logo is drawn through an inline <style> element, which the CSP refuses: the footer credits instead.
    attributionLogo: false,
  },
  grid: { vertLines: { color: "#1e222d" }, horzLines: { color: "#1e222d" } },
  rightPriceScale: { borderColor: "#2a2e39" },
  timeScale: { borderColor: "#2a2e39", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
};

/** Normalise a candle from the API (`time_ms` or `t`/`time`, OHLCV) or a ccxt row [t, o, h, l, c, v]. */
export function toBar(c) {
  if (Array.isArray(c)) return { time: sec(c[0]), open: +c[1], high: +c[2], low: +c[3], close: +c[4], volume: +c[5] };
  const t = c.time_ms ?? c.t ?? c.timestamp ?? c.time;
  return { time: sec(t), open: +c.open, high: +c.high, low: +c.low, close: +c.close, volume: +(c.volume ?? 0) };
}

/** Trades → buy markers under the entry candle, sell markers above the exit candle. */
export function tradeMarkers(trades, barSeconds) {
  const snap = (ms) => (barSeconds ? Math.floor(sec(ms) / barSeconds) * barSeconds : sec(ms));
  const out = [];
  const dense = (trades || []).length > 25; // many trades: arrows only (the table has the figures)
  for (const t of trades || []) {
    if (t.entry_time_ms != null) {
      out.push({ time: snap(t.entry_time_ms), position: "belowBar", color: UP, shape: "arrowUp", text: dense ? "" : "Buy" });
    }
    if (t.exit_time_ms != null) {
      const win = Number(t.pnl) > 0;
      out.push({ time: snap(t.exit_time_ms), position: "aboveBar", color: win ? UP : DOWN, shape: "arrowDown",
        text: dense ? "" : `Sell${t.pnl_pct != null ? ` ${Number(t.pnl_pct) > 0 ? "+" : ""}${Number(t.pnl_pct).toFixed(2)}%` : ""}` });
    }
  }
  out.sort((a, b) => a.time - b.time);
  return out;
}

/** A candlestick chart with volume and trade markers in `container`; `barSeconds` (the timeframe's length,
 * from the market catalog: time.js timeframeSeconds) snaps trade markers to their candle. */
export function candleChart(container, { barSeconds = 0 } = {}) {
  const chart = createChart(container, BASE);
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
  });
  const volume = chart.addSeries(HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "vol", lastValueVisible: false, priceLineVisible: false });
  chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
  const markers = createSeriesMarkers(candles, []);
  const volBar = (b) => ({ time: b.time, value: b.volume, color: b.close >= b.open ? "rgba(38,166,154,.35)" : "rgba(239,83,80,.35)" });
  let last = 0;
  return {
    chart,
    setCandles(list) {
      const bars = list.map(toBar).filter((b) => Number.isFinite(b.time)).sort((a, b) => a.time - b.time);
      const dedup = bars.filter((b, i) => i === 0 || b.time !== bars[i - 1].time);
      candles.setData(dedup);
      volume.setData(dedup.map(volBar));
      last = dedup.length ? dedup[dedup.length - 1].time : 0;
      chart.timeScale().fitContent();
    },
    update(c) {
      const b = toBar(c);
      if (!Number.isFinite(b.time) || b.time < last) return;
      candles.update(b);
      volume.update(volBar(b));
      last = b.time;
    },
    setTrades(trades) { markers.setMarkers(tradeMarkers(trades, barSeconds)); },
  };
}

/** An equity curve (area) in `container`; points are [time_ms, equity] or {candle_ms, equity}. */
export function equityChart(container) {
  const chart = createChart(container, { ...BASE, rightPriceScale: { borderColor: "#2a2e39", scaleMargins: { top: 0.1, bottom: 0.1 } } });
  const series = chart.addSeries(AreaSeries, {
    lineColor: "#2962ff", topColor: "rgba(41,98,255,.35)", bottomColor: "rgba(41,98,255,0)", lineWidth: 2,
  });
  const pt = (p) => Array.isArray(p) ? { time: sec(p[0]), value: +p[1] } : { time: sec(p.candle_ms ?? p.time_ms), value: +p.equity };
  return {
    chart,
    setPoints(points) {
      const data = points.map(pt).sort((a, b) => a.time - b.time).filter((p, i, a) => i === 0 || p.time !== a[i - 1].time);
      series.setData(data);
      chart.timeScale().fitContent();
    },
    update(p) { try { series.update(pt(p)); } catch { /* older than the last point */ } },
  };
}

const SVG = "http://www.w3.org/2000/svg";

/** A tiny inline SVG line of `values` (numbers), coloured by direction, with a text label for screen readers. */
export function sparkline(values, { width = 120, height = 28 } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const nums = values.map(Number).filter(Number.isFinite);
  const title = document.createElementNS(SVG, "title");
  if (nums.length < 2) {
    title.textContent = "not enough data yet";
    svg.append(title);
    return svg;
  }
  const min = Math.min(...nums), max = Math.max(...nums), span = max - min || 1;
  const pts = nums.map((v, i) => `${(i / (nums.length - 1)) * (width - 2) + 1},${height - 2 - ((v - min) / span) * (height - 4)}`);
  const up = nums[nums.length - 1] >= nums[0];
  title.textContent = `equity ${up ? "up" : "down"} from ${nums[0].toFixed(2)} to ${nums[nums.length - 1].toFixed(2)}`;
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", up ? UP : DOWN);
  line.setAttribute("stroke-width", "1.5");
  svg.append(title, line);
  return svg;
}
