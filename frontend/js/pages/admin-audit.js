// Admin: the audit log, filtered by actor, action, text and dates.
import { api } from "../api.js";
import { $, el, clear, appShell, start } from "../ui.js";
import { timeEl, utcDay } from "../time.js";
import { pager } from "../admin.js";

const LIMIT = 100;

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
    const detail = a.detail && typeof a.detail === "object" ? JSON.stringify(a.detail) : a.detail || "";
    tbody.append(el("tr", {}, el("td", {}, timeEl(a.at, { seconds: true })), el("td", {}, a.actor_email || a.actor_id || "—"),
      el("td", { class: "mono" }, a.action), el("td", {}, a.target || ""), el("td", { class: "mono" }, a.ip || ""),
      el("td", { class: "wrap" }, el("span", { class: "mono", title: a.user_agent || "" }, detail))));
  }
  pager($("#pager"), { offset, limit: LIMIT, count: page.count }, load);
}

start(async () => {
  await appShell({ admin: true });
  $("#audit-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(0); });
  await load(0);
});
