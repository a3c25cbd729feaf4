// Helpers of the admin pages: a pager for `{data, count}` lists.
import { el, clear } from "./ui.js";

/** Draw "Previous / 1–50 of 120 / Next" into `node`; `go(offset)` loads a page. */
export function pager(node, { offset, limit, count }, go) {
  clear(node);
  const prev = el("button", { type: "button", class: "btn small", disabled: offset <= 0 }, "Previous");
  const next = el("button", { type: "button", class: "btn small", disabled: offset + limit >= count }, "Next");
  prev.addEventListener("click", () => go(Math.max(0, offset - limit)));
  next.addEventListener("click", () => go(offset + limit));
  node.append(el("span", { class: "muted" }, count ? `${offset + 1}–${Math.min(offset + limit, count)} of ${count}` : "0 results"), prev, next);
}
