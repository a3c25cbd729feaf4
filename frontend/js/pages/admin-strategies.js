// Admin: the strategy files (enable / disable for traders) and the files that failed to load.
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, scrollRegions } from "../ui.js";

async function load() {
  const cat = await api("/admin/strategies");
  const tbody = clear($("#loaded tbody"));
  if (!cat.strategies.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No strategy loaded.")));
  for (const s of cat.strategies) {
    const enabled = s.enabled !== false;
    const action = el("button", { type: "button", class: enabled ? "btn small warn" : "btn small", "aria-label": `${enabled ? "Disable" : "Enable"} ${s.name}` }, enabled ? "Disable" : "Enable");
    action.addEventListener("click", async () => {
      try { await api(`/admin/strategies/${encodeURIComponent(s.name)}`, { method: "PATCH", json: { enabled: !enabled } }); await load(); }
      catch (err) { notice($(".page-status"), "error", err.detail); }
    });
    tbody.append(el("tr", {}, el("td", {}, el("strong", {}, s.name)),
      el("td", {}, s.version != null ? `v${s.version}` : "—", s.origin === "upload" ? el("span", { class: "muted" }, " (upload)") : null),
      el("td", {}, s.author || "—"), el("td", { class: "mono" }, s.file), el("td", {}, s.timeframe),
      el("td", { class: "wrap" }, s.description), el("td", {}, enabled ? badge("ok", "enabled") : badge("bad", "disabled")), el("td", {}, action)));
  }
  const broken = clear($("#broken"));
  if (!cat.broken.length) broken.append(el("p", { class: "muted" }, "Every file loads. "));
  for (const b of cat.broken) {
    broken.append(el("article", { class: "broken" }, el("h3", {}, badge("bad", "broken"), " ", el("span", { class: "mono" }, b.file)), el("pre", {}, b.error)));
  }
  scrollRegions();
}

start(async () => {
  await appShell({ admin: true });
  await load();
});
