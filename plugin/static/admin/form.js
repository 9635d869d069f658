// A form generated from a field description (schema.js) that edits a document in place.
//
// Every control carries `data-path`, the field's path as the API names it in a 422 problem
// (`tiers.levels[1].threshold`), so an error lands beside the very control at fault.
import { h } from "./dom.js";

let ids = 0;
const nextId = () => `f${++ids}`;
const join = (path, key) => (path ? `${path}.${key}` : key);

/** The enclosing path: `a.b[1].c` → `a.b[1]` → `a.b` → `a` → ``. */
export function parentPath(path) {
  const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
  return cut < 0 ? "" : path.slice(0, cut);
}

const INTEGER = /^-?\d+$/;

// What a control's text becomes in the document. Text that is not a number is sent as it is, so
// the API's own validation says what is wrong with it, in place.
function parse(field, raw) {
  const value = raw.trim();
  switch (field.type) {
    case "int":
      return value === "" ? null : INTEGER.test(value) ? Number(value) : value;
    case "number":
      return value === "" ? null : Number.isFinite(Number(value)) ? Number(value) : value;
    case "list": {
      const items = value.split(",").map((item) => item.trim()).filter(Boolean);
      return field.of === "int" ? items.map((item) => (INTEGER.test(item) ? Number(item) : item)) : items;
    }
    case "text":
      return field.nullable && value === "" ? null : raw;
    default:
      return raw;
  }
}

function display(field, value) {
  if (value === null || value === undefined) return "";
  if (field.type === "list") return value.join(", ");
  return String(value);
}

const errorSlot = (path, id) => h("p", { class: "error", id, "data-error-for": path });

function control(field, obj, path, ctx, labelText, { hidden = false } = {}) {
  const here = join(path, field.key);
  const id = nextId();
  const hint = field.hint ? h("p", { class: "hint", id: `${id}-hint` }, field.hint) : null;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  const value = obj[field.key];
  let input;
  if (field.type === "select") {
    const options = field.options.includes(value) ? field.options : [...field.options, value];
    input = h("select", { id }, options.map((option) => h("option", { value: option, selected: option === value }, option)));
  } else {
    const numeric = field.type === "int" || field.type === "number";
    input = h("input", {
      id,
      type: numeric ? "number" : field.type === "time" ? "time" : "text",
      value: display(field, value),
      min: field.min,
      max: field.max,
      step: field.type === "int" ? "1" : numeric ? field.step || "any" : null,
      inputmode: field.type === "list" && field.of === "int" ? "numeric" : null,
      spellcheck: "false",
    });
  }
  input.dataset.path = here;
  input.setAttribute("aria-describedby", described);
  input.addEventListener(field.type === "select" ? "change" : "input", () => {
    obj[field.key] = parse(field, input.value);
    ctx.changed();
  });
  const label = h("label", { for: id, class: hidden ? "sr-only" : null }, labelText ?? field.label);
  return h("div", { class: "field" }, label, input, hint, errorSlot(here, `${id}-error`));
}

/** Removes `items[index]`, then focuses `focusPath` (the list's Add button). */
function removeButton(items, index, name, focusPath, ctx) {
  const remove = () => {
    items.splice(index, 1);
    ctx.rerender(focusPath);
  };
  return h("button", { type: "button", class: "quiet", "aria-label": `Remove ${name}`, onclick: remove }, "Remove");
}

function table(field, obj, path, ctx) {
  const here = join(path, field.key);
  obj[field.key] ??= [];
  const items = obj[field.key];
  const item = field.item.toLowerCase();
  const rows = items.map((entry, index) => {
    const rowPath = `${here}[${index}]`;
    return h(
      "tr",
      { "data-path": rowPath },
      field.columns.map((column) =>
        h("td", {}, control(column, entry, rowPath, ctx, `${field.item} ${index + 1}: ${column.label}`, { hidden: true })),
      ),
      h(
        "td",
        {},
        errorSlot(rowPath),
        removeButton(items, index, `${item} ${index + 1}`, `${here}:add`, ctx),
      ),
    );
  });
  return h(
    "fieldset",
    { class: "group", "data-path": here },
    h("legend", {}, field.label),
    field.hint ? h("p", { class: "hint" }, field.hint) : null,
    errorSlot(here),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid" },
        h(
          "thead",
          {},
          h("tr", {}, field.columns.map((column) => h("th", { scope: "col" }, column.label)), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions"))),
        ),
        h("tbody", {}, rows),
      ),
    ),
    h(
      "button",
      {
        type: "button",
        "data-path": `${here}:add`,
        onclick: () => {
          items.push(field.make());
          ctx.rerender(`${here}[${items.length - 1}].${field.columns[0].key}`);
        },
      },
      `Add ${item}`,
    ),
  );
}

function union(field, obj, path, ctx) {
  const here = join(path, field.key);
  obj[field.key] ??= [];
  const items = obj[field.key];
  const item = field.item.toLowerCase();
  const kinds = Object.entries(field.kinds);
  const entries = items.map((entry, index) => {
    const itemPath = `${here}[${index}]`;
    const kind = field.kinds[entry.kind];
    const kindId = nextId();
    const kindSelect = h(
      "select",
      { id: kindId, "data-path": `${itemPath}.kind`, "aria-describedby": `${kindId}-error` },
      kinds.map(([tag, spec]) => h("option", { value: tag, selected: tag === entry.kind }, spec.label)),
      kind ? null : h("option", { value: entry.kind, selected: true }, entry.kind),
    );
    kindSelect.addEventListener("change", () => {
      items[index] = field.kinds[kindSelect.value].make();
      ctx.rerender(`${itemPath}.kind`);
    });
    return h(
      "fieldset",
      { class: "item", "data-path": itemPath },
      h("legend", {}, `${field.item} ${index + 1}: ${kind ? kind.label : entry.kind}`),
      errorSlot(itemPath),
      h("div", { class: "field" }, h("label", { for: kindId }, "Kind"), kindSelect, errorSlot(`${itemPath}.kind`, `${kindId}-error`)),
      kind ? renderFields(kind.fields, entry, itemPath, ctx) : h("p", { class: "hint" }, "Kept as it is."),
      removeButton(items, index, `${item} ${index + 1}`, `${here}:add`, ctx),
    );
  });
  const newId = nextId();
  const newKind = h("select", { id: newId }, kinds.map(([tag, spec]) => h("option", { value: tag }, spec.label)));
  return h(
    "fieldset",
    { class: "group", "data-path": here },
    h("legend", {}, field.label),
    errorSlot(here),
    entries.length ? entries : h("p", { class: "empty" }, `No ${field.label.toLowerCase()}.`),
    h(
      "div",
      { class: "add" },
      h("label", { for: newId }, `New ${item}`),
      newKind,
      h(
        "button",
        {
          type: "button",
          "data-path": `${here}:add`,
          onclick: () => {
            items.push(field.kinds[newKind.value].make());
            ctx.rerender(`${here}[${items.length - 1}].kind`);
          },
        },
        `Add ${item}`,
      ),
    ),
  );
}

function optional(field, obj, path, ctx) {
  const here = join(path, field.key);
  const id = nextId();
  const present = obj[field.key] !== null && obj[field.key] !== undefined;
  const box = h("input", { type: "checkbox", id, checked: present, "data-path": `${here}:on` });
  box.addEventListener("change", () => {
    obj[field.key] = box.checked ? field.make() : null;
    ctx.rerender(`${here}:on`);
  });
  return h(
    "div",
    { class: "optional", "data-path": here },
    h("div", { class: "check" }, box, h("label", { for: id }, field.label)),
    errorSlot(here),
    present ? h("div", { class: "nested" }, renderFields(field.fields, obj[field.key], here, ctx)) : null,
  );
}

function group(field, obj, path, ctx) {
  const here = join(path, field.key);
  obj[field.key] ??= {};
  return h(
    "fieldset",
    { class: "group", "data-path": here },
    h("legend", {}, field.label),
    errorSlot(here),
    h("div", { class: "fields" }, renderFields(field.fields, obj[field.key], here, ctx)),
  );
}

/**
 * Controls editing `obj` (at `path` in the document) as `fields` describe. `ctx.changed()` follows
 * every edit; `ctx.rerender(focusPath)` is asked for when the shape changes (a row added or removed,
 * a kind switched), naming the control to focus afterwards.
 */
export function renderFields(fields, obj, path, ctx) {
  return fields.map((field) => {
    switch (field.type) {
      case "group":
        return group(field, obj, path, ctx);
      case "table":
        return table(field, obj, path, ctx);
      case "union":
        return union(field, obj, path, ctx);
      case "optional":
        return optional(field, obj, path, ctx);
      default:
        return control(field, obj, path, ctx);
    }
  });
}

/** Remove every error shown in `form`. */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/**
 * Show each `{field, message}` beside its control (or the nearest enclosing part of the form that
 * has a place for it). Returns `[{field, message, label, target}]` for a summary linking to each.
 */
export function showErrors(form, errors) {
  clearErrors(form);
  return errors.map(({ field, message }) => {
    let path = field || "";
    let slot = null;
    while (!slot && path) {
      slot = form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
      if (!slot) path = parentPath(path);
    }
    const target = slot ? form.querySelector(`[data-path="${CSS.escape(path)}"]`) : null;
    if (slot) slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    let label = field;
    if (target && target.matches("input, select, textarea")) {
      target.setAttribute("aria-invalid", "true");
      label = form.querySelector(`label[for="${CSS.escape(target.id)}"]`)?.textContent ?? field;
    } else if (target) {
      label = target.querySelector("legend")?.textContent ?? field;
    }
    return { field, message, label, target };
  });
}

/** Where two documents differ: `[{path, before, after}]`, leaves only. */
export function changes(before, after, path = "") {
  const isObject = (value) => value !== null && typeof value === "object";
  if (isObject(before) && isObject(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = Array.isArray(before)
      ? [...Array(Math.max(before.length, after.length)).keys()]
      : [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((key) =>
      changes(before[key], after[key], Array.isArray(before) ? `${path}[${key}]` : join(path, key)),
    );
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path, before, after }];
}
