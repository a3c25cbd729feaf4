// Live updates: the user's server-sent event stream (`GET /events/stream?ticket=`), opened with a
// short-lived single-use ticket from `POST /events/ticket`. After a drop the stream is closed and
// reopened with a fresh ticket (backoff 1 s, 2 s, 4 s ... 30 s), resuming after the last event it
// received (`last_event_id`). No polling anywhere.

import { api, apiUrl } from "./api.js";

export const EVENT_TYPES = ["candle", "order", "fill", "trade", "status", "log", "equity", "backtest", "strategy"];

/**
 * Open the stream. `onEvent(type, data)` gets every event (data parsed from JSON; it carries `run_id`
 * or, for backtests, the backtest's id). `onState(state)` gets "connecting", "live" or "reconnecting".
 * `strategy` events (an upload's validation finished)
 * carry `version_id`, `status` and `name`. Returns {close()}.
 */
export function liveEvents(onEvent, onState = () => {}) {
  let source = null;
  let closed = false;
  let delay = 1000;
  let timer = null;
  let lastId = "";  // the last event's id: a reopened stream resumes after it (nothing missed in the gap)

  async function open() {
    if (closed) return;
    onState(source ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = (await api("/events/ticket", { method: "POST" })).ticket;
    } catch (err) {
      if (err.status === 401) return;
      retry();
      return;
    }
    if (closed) return;
    const resume = lastId ? "&last_event_id=" + encodeURIComponent(lastId) : "";
    source = new EventSource(apiUrl("/events/stream?ticket=" + encodeURIComponent(ticket) + resume));
    source.addEventListener("open", () => { delay = 1000; onState("live"); });
    source.addEventListener("error", () => {
      // EventSource would retry with the same (now used) ticket: close it and start over.
      source.close();
      retry();
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (ev) => {
        if (ev.lastEventId) lastId = ev.lastEventId;
        let data = null;
        try { data = JSON.parse(ev.data); } catch { data = ev.data; }
        onEvent(type, data);
      });
    }
  }

  function retry() {
    if (closed) return;
    onState("reconnecting");
    clearTimeout(timer);
    timer = setTimeout(open, delay);
    delay = Math.min(delay * 2, 30000);
  }

  window.addEventListener("pagehide", () => { closed = true; if (source) source.close(); });
  open();
  return { close() { closed = true; clearTimeout(timer); if (source) source.close(); } };
}

/** A small "Live / Reconnecting" indicator bound to liveEvents' states. */
export function liveBadge(node) {
  const text = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };
  return (state) => {
    node.className = `live-dot ${state}`;
    node.textContent = text[state] || state;
  };
}

/** Call `fn` at most once per `ms` burst (events often come in bursts: order, fill, trade, equity). */
export function debounce(fn, ms = 250) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
