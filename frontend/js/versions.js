// Strategy versions as the author and the reviewing admin see them: the status badge, the validation
// report and the source with line numbers. The source is only ever set as text (textContent), never
// parsed as HTML: it is code someone uploaded.
import { el, badge } from "./ui.js";

const STATUS_TEXT = {
  validating: "validating", invalid: "invalid", pending_review: "pending review",
  approved: "approved", rejected: "rejected",
};

/** The badge of a version's `status` (validating | invalid | pending_review | approved | rejected). */
export function versionBadge(status) {
  return badge(status, STATUS_TEXT[status] || String(status || "—").replace(/_/g, " "));
}

/** "sma_fast v3", "sma_fast (unnumbered)" or the file name while the version has no catalog name yet. */
export function versionTitle(v) {
  if (!v.name) return v.filename;
  return v.version != null ? `${v.name} v${v.version}` : v.name;
}

/** The first 12 hex digits of a sha256, in a <code> whose title holds all of it. */
export function hashEl(hash) {
  return el("code", { class: "mono", title: hash || "" }, hash ? hash.slice(0, 12) : "—");
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 })} KiB`;
}

/**
 * The validation report `{ok, steps: [{name, ok, message}]}` as a list: each step with a passed or
 * failed mark (text as well as colour) and its message. Null report: "not validated yet".
 */
export function reportEl(report, { validating = false } = {}) {
  if (!report || !Array.isArray(report.steps)) {
    return el("p", { class: "muted" }, validating ? "Validation is running in the sandbox…" : "No validation report.");
  }
  const steps = report.steps.map((s) => el("li", { class: s.ok ? "step ok" : "step failed" },
    el("span", { class: "mark", "aria-hidden": "true" }, s.ok ? "✓" : "✗"),
    el("span", { class: "sr-only" }, s.ok ? "passed: " : "failed: "),
    el("span", { class: "step-name" }, s.name),
    s.message ? el("span", { class: "step-message" }, s.message) : null));
  return el("div", { class: "report" },
    el("p", {}, report.ok ? badge("ok", "all checks passed") : badge("bad", "validation failed")),
    steps.length ? el("ol", { class: "steps" }, ...steps) : el("p", { class: "muted" }, "The report lists no steps."));
}

/**
 * A file's source with line numbers: an ordered list, one item per line (the numbers are the list's
 * markers, so copying the code does not copy them). `label` names the scrollable region.
 */
export function sourceEl(source, label) {
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const ol = el("ol", { class: "source" });
  for (const line of lines) {
    const li = document.createElement("li");
    li.textContent = line;
    ol.append(li);
  }
  if (lines.length >= 1000) ol.classList.add("wide-numbers");
  return el("div", { class: "source-wrap", tabindex: "0", role: "region", "aria-label": label }, ol);
}
