// Strategy uploads (authors and admins): send a .py file (file input or drop zone), then follow each
// version through validation and review: status, the validation report, the reviewer's reason when
// rejected, and the source. A finished validation arrives as a `strategy` event of the live stream;
// while the stream is not live (connecting, reconnecting) the page polls each validating
// upload every 2 s instead (every 15 s while it is live, in case an event was lost).
import { api, ApiError } from "../api.js";
import { liveEvents, liveBadge } from "../events.js";
import { $, el, clear, appShell, start, notice, showFormErrors, clearFormErrors, busy, scrollRegions } from "../ui.js";
import { timeEl } from "../time.js";
import { versionBadge, versionTitle, hashEl, fmtBytes, reportEl, sourceEl } from "../versions.js";

const POLL_MS = 2000;
const SLOW_POLL_MS = 15000;
let versions = [];
let pollTimer = null;
let streamLive = false;

function kv(dl, k, v) { dl.append(el("dt", {}, k), el("dd", {}, v)); }

function statusNote(v) {
  if (v.status === "validating") return el("p", { class: "notice info" }, "Validating in the sandbox: this page updates by itself.");
  if (v.status === "invalid") return el("p", { class: "notice error" }, "This file did not pass validation: the report below says why. Fix it and upload it again.");
  if (v.status === "pending_review") return el("p", { class: "notice warn" }, "Validated. An admin reviews it before it appears in the catalog.");
  if (v.status === "approved") return el("p", { class: "notice ok" }, "Approved: traders can backtest and run this version.");
  if (v.status === "rejected") {
    return el("div", { class: "notice error review-reason" }, el("strong", {}, "Rejected by the reviewer: "),
      el("span", { class: "reason-text" }, v.review_reason || "no reason given."));
  }
  return null;
}

function sourceDetails(v) {
  const body = el("div", { class: "source-body" }, el("p", { class: "muted" }, "Loading the source…"));
  const details = el("details", { class: "source-details" }, el("summary", {}, "View source"), body);
  let loaded = false;
  details.addEventListener("toggle", async () => {
    if (!details.open || loaded) return;
    loaded = true;
    try {
      const src = await api(`/strategies/uploads/${encodeURIComponent(v.id)}/source`);
      clear(body).append(sourceEl(src.source, `Source of ${src.filename}`));
    } catch (err) {
      loaded = false;
      clear(body).append(el("p", { class: "notice error" }, err.detail));
    }
  });
  return details;
}

function versionCard(v) {
  const meta = el("dl", { class: "kv" });
  kv(meta, "File", el("span", { class: "mono" }, v.filename));
  kv(meta, "Size", fmtBytes(v.size_bytes));
  kv(meta, "SHA-256", hashEl(v.content_hash));
  kv(meta, "Uploaded", timeEl(v.created_at));
  if (v.reviewed_at) kv(meta, "Reviewed", timeEl(v.reviewed_at));
  const titleId = `v-${v.id}-title`;
  const report = el("details", { class: "report-details", open: v.status === "invalid" || v.status === "pending_review" },
    el("summary", {}, "Validation report"), reportEl(v.report, { validating: v.status === "validating" }));
  return el("li", { id: `v-${v.id}`, "data-status": v.status },
    el("article", { class: "version", "aria-labelledby": titleId },
      el("div", { class: "version-head" }, el("h3", { id: titleId }, versionTitle(v)), versionBadge(v.status)),
      meta, statusNote(v), report, sourceDetails(v)));
}

function render() {
  const ul = clear($("#versions"));
  $("#versions-count").textContent = versions.length ? `(${versions.length})` : "";
  if (!versions.length) ul.append(el("li", { class: "muted" }, "No uploads yet. Upload a strategy file above."));
  for (const v of versions) ul.append(versionCard(v));
  schedulePoll();
}

/** Replace one version's card in place, keeping which of its sections are open. */
function replaceCard(v) {
  const old = document.getElementById(`v-${v.id}`);
  if (!old) { render(); return; }
  const wasOpen = [...old.querySelectorAll("details")].map((d) => d.open);
  const fresh = versionCard(v);
  old.replaceWith(fresh);
  // A finished validation opens its report (set by versionCard); otherwise keep what the author opened.
  if (old.dataset.status === v.status) fresh.querySelectorAll("details").forEach((d, i) => { if (wasOpen[i]) d.open = true; });
}

/** Read one upload again and redraw its card when its status changed. */
async function refresh(id) {
  const known = versions.find((x) => x.id === id);
  try {
    const fresh = await api(`/strategies/uploads/${encodeURIComponent(id)}`);
    const i = versions.findIndex((x) => x.id === fresh.id);
    if (i >= 0) versions[i] = fresh; else versions.unshift(fresh);
    if (!known || fresh.status !== known.status) { if (known) replaceCard(fresh); else render(); }
  } catch (err) {
    if (err.status === 404 && known) { versions = versions.filter((x) => x.id !== id); render(); }
  }
  scrollRegions();
}

async function refreshValidating() {
  for (const v of versions.filter((x) => x.status === "validating")) await refresh(v.id);
}

function schedulePoll() {
  clearTimeout(pollTimer);
  const pending = versions.filter((v) => v.status === "validating");
  const status = $("#poll-status");
  if (!pending.length) { status.textContent = ""; return; }
  const what = pending.length === 1 ? "one upload" : `${pending.length} uploads`;
  status.textContent = streamLive ? `Validating ${what}: the result appears here when it is ready.` : `Checking ${what} every 2 s…`;
  // Live: the event brings the result; a slow check still catches an event lost in a reconnect.
  pollTimer = setTimeout(async () => { await refreshValidating(); schedulePoll(); }, streamLive ? SLOW_POLL_MS : POLL_MS);
}

function follow() {
  const showState = liveBadge($("#live"));
  liveEvents((type, data) => {
    if (type === "strategy" && data && data.version_id) refresh(data.version_id).then(schedulePoll);
  }, (state) => {
    showState(state);
    const was = streamLive;
    streamLive = state === "live";
    // Coming (back) online: an outcome published while the stream was down is read once here.
    if (streamLive && !was) refreshValidating().then(schedulePoll); else schedulePoll();
  });
}

function fileError(form, message) {
  showFormErrors(form, new ApiError(422, message, [{ field: "file", message }]));
}

function uploadForm() {
  const form = $("#upload-form");
  const input = $("#upload-file");
  const zone = $("#dropzone");
  const chosen = $("#upload-chosen");
  const showChosen = () => {
    const f = input.files && input.files[0];
    chosen.textContent = f ? `Selected: ${f.name} (${fmtBytes(f.size)})` : "";
  };
  input.addEventListener("change", () => { clearFormErrors(form); showChosen(); });
  // The drop zone is a larger target for the same input: a dropped file becomes the input's file, so
  // the keyboard path (the input itself) and the mouse path send the same form.
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); ev.dataTransfer.dropEffect = "copy"; zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const files = ev.dataTransfer && ev.dataTransfer.files;
    if (!files || !files.length) return;
    const dt = new DataTransfer();
    dt.items.add(files[0]);
    input.files = dt.files;
    input.dispatchEvent(new Event("change"));
    input.focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const file = input.files && input.files[0];
    if (!file) { fileError(form, "Choose a .py file to upload."); return; }
    if (!/\.py$/i.test(file.name)) { fileError(form, "Only Python files (.py) can be uploaded."); return; }
    const body = new FormData();
    body.append("file", file, file.name);
    busy(form, async () => {
      try {
        const v = await api("/strategies/uploads", { method: "POST", multipart: body });
        // Its validation may have finished (and its event arrived) before this reply: keep the newer state.
        const known = versions.find((x) => x.id === v.id);
        versions = [known && known.status !== "validating" ? known : v, ...versions.filter((x) => x.id !== v.id)];
        form.reset();
        showChosen();
        render();
        notice(form.querySelector(".form-status"), "ok", `Uploaded ${v.filename}: validating in the sandbox.`);
        scrollRegions();
      } catch (err) {
        showFormErrors(form, err);
      }
    });
  });
}

function denied(title, message, hint) {
  $("#live").hidden = true;
  clear($("#author-content")).append(el("section", { class: "panel", "aria-labelledby": "denied-title" },
    el("h2", { id: "denied-title" }, title), el("p", { class: "notice error", id: "author-denied" }, message),
    el("p", {}, hint, el("a", { href: "/strategies.html" }, "Back to the catalog"))));
}

start(async () => {
  const me = await appShell();
  // The server refuses uploads from anyone but authors and admins (403); the page says so up front.
  if (me.role !== "author" && me.role !== "admin") {
    denied("For strategy authors", "Only authors and admins upload strategies.", "Ask an admin for the author role. ");
    return;
  }
  let list;
  try {
    list = await api("/strategies/uploads", { query: { limit: 200 } });
  } catch (err) {
    if (err.status === 403) {
      denied("For strategy authors", err.detail, "Ask an admin for the author role. ");
      return;
    }
    throw err;
  }
  versions = list.data || [];
  uploadForm();
  render();
  follow();
});
