// Times and timeframes, the one place the pages turn them into text and numbers.
//
// The API speaks UTC: epoch milliseconds (`*_ms`) and ISO 8601 datetimes (a value without a zone is UTC).
// Timeframes are ccxt names ("1m", "1h"); their lengths come from the market catalog (`GET /markets`,
// js/markets.js), never from a table kept here.

import { el } from "./ui.js";

/** A Date from epoch milliseconds or an ISO 8601 string (no zone: UTC); null for empty or invalid input. */
export function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  const d = typeof t === "number" ? new Date(t) : new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : t + "Z");
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Epoch milliseconds → whole epoch seconds (what the chart library's time scale takes). */
export function msToSeconds(ms) { return Math.floor(Number(ms) / 1000); }

/** "2024-03-01 14:05 UTC" (seconds with `seconds: true`); "—" for no time. */
export function fmtTime(t, { seconds = false } = {}) {
  const d = toDate(t);
  if (!d) return "—";
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

/** A <time> element showing fmtTime(t), or "—". */
export function timeEl(t, opts) {
  const d = toDate(t);
  return d ? el("time", { datetime: d.toISOString() }, fmtTime(d.getTime(), opts)) : "—";
}

/** A duration in seconds as "2 d 3 h", "4 h 5 min" or "6 min". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(Number(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  return `${m} min`;
}

/** The ISO datetime of a calendar day's start or end in UTC, from a date input's "YYYY-MM-DD" ("" stays "").
 * `end: true` gives the day's last second (an inclusive "until"). */
export function utcDay(value, { end = false } = {}) {
  if (!value) return value;
  return `${value}T${end ? "23:59:59" : "00:00:00"}Z`;
}

/** The length of `timeframe` in seconds from a catalog's timeframe list ([{timeframe, length_ms}]), or 0
 * when the list does not have it. */
export function timeframeSeconds(timeframes, timeframe) {
  const found = (timeframes || []).find((tf) => tf.timeframe === timeframe);
  return found ? msToSeconds(found.length_ms) : 0;
}
