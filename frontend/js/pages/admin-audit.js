// Admin: the audit log, filtered by actor, action, text and dates.
import { api } from "../api.js";
import { $, el, clear, appShell, start } from "../ui.js";
import { timeEl, utcDay } from "../time.js";
import { pager } from "../admin.js";

const LIMIT = 100;

// An audit entry's detail as "label: value" pairs (request ids go to the tooltip; nested values as JSON).
function detailEl(detail, userAgent) {
  if (!detail || typeof detail !== "object") return el("span", { title: userAgent || "" }, detail || "");
  const tip = [userAgent, detail.request_id && `request ${detail.request_id}`].filter(Boolean).join("\n");
  const pairs = Object.entries(detail).filter(([k]) => k !== "request_id");
  const list = el("dl", { class: "pairs", title: tip });
  for (const [k, v] of pairs) {
    const shown = v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : typeof v === "boolean" ? (v ? "yes" : "no") : String(v);
    list.append(el("dt", {}, k.replaceAll("_", " ")), el("dd", {}, shown));
  }
  return pairs.length ? list : el("span", { title: tip }, "");
}

async function load(offset = 0) {
  const d = Object.fromEntries(new FormData($("#audit-filter")));
  const tbody = clear($("#audit tbody"));
  let page;
  try {
    page = await api("/admin/audit", { query: { actor: d.actor, action: d.action, q: d.q,
      since: utcDay(d.since), until: utcDay(d.until, { end: true }), limit: LIMIT, offset } });
  } catch (err) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, err.detail)));
    return;
  }
  if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No entry matches.")));
  for (const a of page.data) {
    tbody.append(el("tr", {}, el("td", {}, timeEl(a.at, { seconds: true })), el("td", {}, a.actor_email || a.actor_id || "—"),
      el("td", { class: "mono" }, a.action), el("td", {}, a.target || ""), el("td", { class: "mono" }, a.ip || ""),
      el("td", { class: "wrap" }, detailEl(a.detail, a.user_agent))));
  }
  pager($("#pager"), { offset, limit: LIMIT, count: page.count }, load);
}

start(async () => {
  await appShell({ admin: true });
  $("#audit-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(0); });
  await load(0);
});
