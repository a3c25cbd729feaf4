// Admin: review uploaded strategy versions. The list (pending review by default, oldest first; filter by
// status), then one version's source with line numbers, its validation report, and Approve or Reject
// with a reason.
import { api, ApiError } from "../api.js";
import { $, el, clear, appShell, start, notice, field, showFormErrors, clearFormErrors, busy, confirmDialog, scrollRegions } from "../ui.js";
import { timeEl } from "../time.js";
import { pager } from "../admin.js";
import { versionBadge, versionTitle, hashEl, fmtBytes, reportEl, sourceEl } from "../versions.js";

const LIMIT = 50;
let offset = 0;
const query = new URLSearchParams(location.search);

/** The author as the admin sees them: display name and e-mail (either may be missing). */
function authorEl(v) {
  const name = v.author_display_name || v.author_name || v.author || null;
  const email = v.author_email || null;
  if (!name && !email) return el("span", { class: "muted" }, "—");
  return el("span", { class: "author" }, name || email, name && email && name !== email ? el("span", { class: "muted" }, ` (${email})`) : null);
}

function setUrl(params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) qs.set(k, v);
  const s = qs.toString();
  history.replaceState(null, "", s ? `?${s}` : location.pathname);
}

async function load(at = offset) {
  offset = at;
  const status = $("#status").value;
  const tbody = clear($("#versions tbody"));
  let page;
  try { page = await api("/admin/strategy-versions", { query: { status: status === "any" ? "" : status, limit: LIMIT, offset } }); }
  catch (err) { tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, err.detail))); return; }
  if (!page.data.length) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, status === "pending_review" ? "Nothing waits for review." : "No version matches.")));
  }
  // Any status: what waits for a review comes first (within this page of the list; newest first otherwise).
  const rows = status === "any" ? [...page.data].sort((a, b) => (b.status === "pending_review") - (a.status === "pending_review")) : page.data;
  for (const v of rows) {
    const review = el("button", { type: "button", class: "btn small", "aria-label": `Review ${v.filename} (${v.id.slice(0, 8)})` }, "Review");
    review.addEventListener("click", () => show(v.id, { focus: true }));
    tbody.append(el("tr", { "data-id": v.id, "data-status": v.status },
      el("td", {}, timeEl(v.created_at)), el("td", {}, authorEl(v)),
      el("td", {}, v.name ? el("strong", {}, versionTitle(v)) : el("span", { class: "muted" }, "—")),
      el("td", { class: "mono" }, v.filename), el("td", {}, versionBadge(v.status)), el("td", {}, review)));
  }
  pager($("#pager"), { offset, limit: LIMIT, count: page.count }, load);
}

function kv(dl, k, v) { dl.append(el("dt", {}, k), el("dd", {}, v)); }

function decisionForms(v) {
  const approve = el("button", { type: "button", class: "btn buy" }, "Approve");
  const approveStatus = el("div", { class: "form-status", tabindex: "-1", role: "alert" });
  approve.addEventListener("click", async () => {
    if (!(await confirmDialog(`Approve ${versionTitle(v)}?`, "Traders see it in the catalog at once and can backtest and run it.", "Approve", false))) return;
    approve.disabled = true;
    try {
      await api(`/admin/strategy-versions/${encodeURIComponent(v.id)}/approve`, { method: "POST" });
      await Promise.all([show(v.id), load()]);
      notice($("#review-outcome"), "ok", `${versionTitle(v)} is approved and in the catalog.`);
    } catch (err) {
      approve.disabled = false;
      notice(approveStatus, "error", err.detail);
    }
  });

  const reason = el("textarea", { id: "reject-reason", name: "reason", rows: 3, required: true });
  const reject = el("form", { novalidate: true, id: "reject-form", "aria-label": "Reject this version" },
    el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
    field("Reason for the author", reason, "Required. The author reads it on their uploads page."),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn danger" }, "Reject")));
  reject.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(reject);
    const text = reason.value.trim();
    if (!text) {
      showFormErrors(reject, new ApiError(422, "Give the author a reason.", [{ field: "reason", message: "A reason is required: the author reads it." }]));
      return;
    }
    busy(reject, async () => {
      try {
        await api(`/admin/strategy-versions/${encodeURIComponent(v.id)}/reject`, { method: "POST", json: { reason: text } });
        await Promise.all([show(v.id), load()]);
        notice($("#review-outcome"), "ok", `${versionTitle(v)} is rejected; its author sees your reason.`);
      } catch (err) {
        showFormErrors(reject, err);
      }
    });
  });
  return el("div", { class: "decision" },
    el("div", { class: "approve-box" }, el("h3", {}, "Approve"), el("p", { class: "muted" }, "The source and the report look right: publish this version."), approveStatus, el("div", { class: "form-actions" }, approve)),
    el("div", { class: "reject-box" }, el("h3", {}, "Reject"), reject));
}

async function show(id, { focus = false } = {}) {
  const panel = $("#review");
  const body = clear($("#review-body"));
  panel.hidden = false;
  body.append(el("p", { class: "muted" }, "Loading the version…"));
  let v;
  try { v = await api(`/admin/strategy-versions/${encodeURIComponent(id)}`); }
  catch (err) { clear(body).append(el("p", { class: "notice error" }, err.detail)); return; }
  setUrl({ status: $("#status").value === "pending_review" ? "" : $("#status").value, id: v.id });
  $("#review-title").textContent = `Review: ${versionTitle(v)}`;
  const meta = el("dl", { class: "kv", id: "review-meta" });
  kv(meta, "Status", versionBadge(v.status));
  kv(meta, "Author", authorEl(v));
  kv(meta, "File", el("span", { class: "mono" }, v.filename));
  kv(meta, "Size", fmtBytes(v.size_bytes));
  kv(meta, "SHA-256", hashEl(v.content_hash));
  kv(meta, "Uploaded", timeEl(v.created_at));
  if (v.reviewed_at) kv(meta, "Reviewed", timeEl(v.reviewed_at));
  if (v.review_reason) kv(meta, "Reason", v.review_reason);
  const outcome = el("div", { id: "review-outcome", role: "status" });
  const decision = v.status === "pending_review" ? decisionForms(v)
    : el("p", { class: "muted" }, v.status === "validating" ? "Still validating: it can be reviewed once the sandbox checks finish."
      : v.status === "invalid" ? "It failed validation: there is nothing to review." : `Already ${v.status}.`);
  clear(body).append(outcome,
    // Desktop: the facts and the decision on the left, the source beside them; narrow: facts, source, decision.
    el("div", { class: "grid review-grid" },
      el("div", { class: "review-side" }, meta, el("h3", { class: "gap" }, "Validation report"), reportEl(v.report, { validating: v.status === "validating" })),
      el("div", { class: "review-source" }, el("h3", {}, "Source ", el("span", { class: "mono muted" }, v.filename)),
        sourceEl(v.source, `Source of ${v.filename}`)),
      el("div", { class: "review-decision" }, el("h3", {}, "Decision"), decision)));
  scrollRegions();
  if (focus) { panel.scrollIntoView({ block: "start" }); $("#review-title").focus(); }
}

start(async () => {
  await appShell({ admin: true });
  const want = query.get("status");
  if (want !== null && [...$("#status").options].some((o) => o.value === want)) $("#status").value = want;
  $("#version-filter").addEventListener("submit", (ev) => { ev.preventDefault(); setUrl({ status: $("#status").value === "pending_review" ? "" : $("#status").value }); load(0); });
  await load(0);
  if (query.get("id")) await show(query.get("id"));
});
