// Building the page from data. Text always goes in as text (never as HTML), so nothing an API
// answer holds can run as script beside the key.

/** An element: `h("td", {class: "num"}, "12")`. Attributes `on<event>` add listeners. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replace an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

export const byId = (id) => document.getElementById(id);

const statusRegion = () => byId("status");

/** A message in the live region, read out by screen readers: kind is info, success or error. */
export function announce(text, kind = "info") {
  const region = statusRegion();
  region.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
  fill(region, h("p", { class: `message ${kind}` }, text));
}

export function clearStatus() {
  statusRegion().replaceChildren();
}

/**
 * A table: `columns` are `{label, cell: (row) => node or text, num}`; an empty list shows `empty`.
 */
export function table(caption, columns, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row))))),
      ),
    ),
  );
}

/** Definition list from [[term, value], …]. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

const numbers = new Intl.NumberFormat("en");
export const num = (value) => (value === null || value === undefined ? "—" : numbers.format(value));

const dates = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short" });
export const when = (value) => (value ? dates.format(new Date(value)) : "—");

export const percent = (value) => `${(value * 100).toFixed(1)} %`;

/** Mark a container busy while `work` runs (screen readers wait for it). */
export async function busy(element, work) {
  element.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    element.removeAttribute("aria-busy");
  }
}
