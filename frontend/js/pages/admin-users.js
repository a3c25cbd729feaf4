// Admin: users (search by e-mail and role, change the role, disable or enable an account).
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, confirmDialog } from "../ui.js";
import { timeEl } from "../time.js";
import { pager } from "../admin.js";

// The roles of the API (models/user.py, Role): traders run strategies, authors also publish them, admins run the platform.
const ROLES = ["trader", "author", "admin"];

const LIMIT = 50;
let me = null;

async function load(offset = 0) {
  const d = Object.fromEntries(new FormData($("#user-search")));
  const tbody = clear($("#users tbody"));
  let page;
  try {
    page = await api("/admin/users", { query: { q: d.q, role: d.role, limit: LIMIT, offset } });
  } catch (err) {
    tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, err.detail)));
    return;
  }
  if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No user matches.")));
  for (const u of page.data) {
    const self = u.id === me.id;
    const role = el("select", { "aria-label": `Role of ${u.email}`, disabled: self }, ...ROLES.map((r) => el("option", { value: r, selected: u.role === r }, r)));
    role.addEventListener("change", async () => {
      try { await api(`/admin/users/${u.id}`, { method: "PATCH", json: { role: role.value } }); notice($(".page-status"), "ok", `${u.email} is now ${role.value}.`); await load(offset); }
      catch (err) { notice($(".page-status"), "error", err.detail); role.value = u.role; }
    });
    const toggle = el("button", { type: "button", class: u.is_active ? "btn small danger" : "btn small", disabled: self }, u.is_active ? "Disable" : "Enable");
    toggle.setAttribute("aria-label", `${u.is_active ? "Disable" : "Enable"} ${u.email}`);
    toggle.addEventListener("click", async () => {
      if (u.is_active && !(await confirmDialog(`Disable ${u.email}?`, "They are signed out and cannot sign in again until an admin enables the account. Their runs keep their state.", "Disable the account"))) return;
      try {
        await api(`/admin/users/${u.id}`, { method: "PATCH", json: { is_active: !u.is_active } });
        notice($(".page-status"), "ok", `${u.email} is ${u.is_active ? "disabled" : "enabled"}.`);
        await load(offset);
      } catch (err) { notice($(".page-status"), "error", err.detail); }
    });
    tbody.append(el("tr", { "data-email": u.email }, el("td", {}, u.email, self ? el("span", { class: "muted" }, " (you)") : null), el("td", {}, role),
      el("td", {}, u.is_active ? badge("ok", "active") : badge("bad", "disabled")),
      el("td", {}, u.is_verified ? badge("ok", "yes") : badge("warn", "no")), el("td", {}, u.totp_enabled ? badge("ok", "on") : badge("muted", "off")),
      el("td", {}, timeEl(u.created_at)), el("td", {}, toggle)));
  }
  pager($("#pager"), { offset, limit: LIMIT, count: page.count }, load);
}

start(async () => {
  me = await appShell({ admin: true });
  $("#user-search").addEventListener("submit", (ev) => { ev.preventDefault(); load(0); });
  await load(0);
});
