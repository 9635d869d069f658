// The program: edit, preview the impact, publish with If-Match (a stale one is 412).
import { api } from "./api.js";
import { announce, busy, byId, facts, fill, h, num, table } from "./dom.js";
import { changes, clearErrors, renderFields, showErrors } from "./form.js";
import { PROGRAM } from "./schema.js";

const live = { document: null, etag: null };
let draft = null; // the document being edited, from the live version `basis`
let previewedAs = null; // the draft, as JSON, that the preview on screen was computed for
let lastPreview = null;
let conflicted = false; // a publish found a newer live version: reload before publishing

const form = () => byId("program-form");

/** The live program (loaded once, again after a publish); the other views name levels from it. */
export async function liveProgram() {
  if (!live.document) await fetchLive();
  return live.document;
}

async function fetchLive() {
  const { data, headers } = await api("/v1/program");
  live.document = data;
  live.etag = headers.get("etag");
}

export function forget() {
  live.document = live.etag = draft = previewedAs = lastPreview = null;
  conflicted = false;
}

export async function show() {
  if (!draft) {
    await busy(form(), fetchLive);
    startFrom(live.document);
  }
}

function startFrom(documentValue) {
  draft = structuredClone(documentValue);
  previewedAs = null;
  lastPreview = null;
  conflicted = false;
  byId("preview-panel").hidden = true;
  hideSummary();
  render();
}

const ctx = {
  changed() {
    updatePublish();
  },
  rerender(focusPath) {
    render();
    const target = form().querySelector(`[data-path="${CSS.escape(focusPath)}"]`);
    if (target) target.focus();
    updatePublish();
  },
};

function render() {
  fill(form(), renderFields(PROGRAM, draft, "", ctx));
  byId("program-version").textContent = `Live version ${live.document.version} · ETag ${live.etag}`;
  updatePublish();
}

function updatePublish() {
  const current = JSON.stringify(draft);
  const fresh = previewedAs === current;
  const edited = changes(live.document, draft).filter((change) => change.path !== "version").length;
  byId("publish").disabled = !fresh || conflicted;
  byId("publish-hint").textContent = conflicted
    ? "A newer version was published meanwhile: load the live program before publishing."
    : fresh
    ? edited
      ? `The preview shows your ${edited} change${edited === 1 ? "" : "s"}: ready to publish.`
      : "The preview shows the live program unchanged."
    : previewedAs
      ? "You edited the program after the preview: preview again to publish."
      : edited
        ? `${edited} unpublished change${edited === 1 ? "" : "s"}. Preview them first.`
        : "No changes yet.";
  const panel = byId("preview-panel");
  panel.classList.toggle("stale", Boolean(previewedAs) && !fresh);
}

function hideSummary() {
  const summary = byId("program-errors");
  summary.hidden = true;
  summary.replaceChildren();
  if (form()) clearErrors(form());
}

function showProblems(error, what) {
  const summary = byId("program-errors");
  if (error.status === 422 && error.fieldErrors.length) {
    const shown = showErrors(form(), error.fieldErrors);
    fill(
      summary,
      h("h2", {}, `Not ${what}: ${shown.length === 1 ? "one field needs" : `${shown.length} fields need`} a change`),
      h(
        "ul",
        {},
        shown.map((item) =>
          h(
            "li",
            {},
            h(
              "button",
              { type: "button", class: "link", onclick: () => item.target?.focus() },
              `${item.label}: ${item.message}`,
            ),
          ),
        ),
      ),
    );
    summary.hidden = false;
    summary.focus();
    announce(`Not ${what}: check the marked fields.`, "error");
    return;
  }
  fill(summary, h("h2", {}, `Not ${what}`), h("p", {}, error.message));
  summary.hidden = false;
  summary.focus();
  announce(`Not ${what}: ${error.message}`, "error");
}

async function preview() {
  hideSummary();
  const candidate = JSON.stringify(draft);
  const panel = byId("preview-panel");
  try {
    const { data } = await busy(panel, () => api("/v1/program/preview", { method: "POST", body: draft }));
    previewedAs = candidate;
    lastPreview = data;
    fill(byId("preview-body"), previewContent(data));
    panel.hidden = false;
    updatePublish();
    announce(`Preview ready: ${movesSentence(data)}`, "success");
    byId("preview-title").focus();
  } catch (error) {
    showProblems(error, "previewed");
  }
}

async function publish() {
  hideSummary();
  try {
    const { data, headers } = await api("/v1/program", {
      method: "PUT",
      body: draft,
      headers: { "If-Match": live.etag },
    });
    const moved = lastPreview ? `As previewed, ${movesSentence(lastPreview, total(lastPreview) === 1 ? "changes" : "change")}` : "";
    live.document = data;
    live.etag = headers.get("etag");
    startFrom(data);
    announce(`Published version ${data.version}. ${moved}`, "success");
  } catch (error) {
    if (error.status === 412) conflict(error);
    else showProblems(error, "published");
  }
}

function conflict(error) {
  conflicted = true;
  updatePublish();
  const summary = byId("program-errors");
  fill(
    summary,
    h("h2", {}, "Not published: the program changed while you were editing"),
    h(
      "p",
      {},
      `Someone published a newer version after you loaded version ${live.document.version}. `,
      "Your edits are still here and nothing was published.",
    ),
    h("p", {}, "Load the live program to see what changed, then make your edits again."),
    h("p", { class: "hint" }, error.message),
    h("button", { type: "button", onclick: reload }, "Load the live program (discards your edits)"),
  );
  summary.hidden = false;
  summary.focus();
  announce("Not published: someone else published a newer version meanwhile.", "error");
}

async function reload() {
  await busy(form(), fetchLive);
  startFrom(live.document);
  announce(`Loaded the live program, version ${live.document.version}.`, "info");
  byId("program-title").focus();
}

const levelName = (code) =>
  [...draft.tiers.levels, ...live.document.tiers.levels].find((level) => level.code === code)?.name ?? code;

const total = (preview) => preview.tier_moves.reduce((sum, move) => sum + move.members, 0);

function movesSentence(preview, verb = "would change") {
  const count = total(preview);
  if (!count) return `no member ${verb === "would change" ? verb : "changes"} tier.`;
  const parts = preview.tier_moves.map((move) => `${move.members} ${levelName(move.from)} → ${levelName(move.to)}`);
  return `${num(count)} member${count === 1 ? "" : "s"} ${verb} tier (${parts.join(", ")}).`;
}

const shown = (value) => (value === undefined ? "(none)" : JSON.stringify(value));

function previewContent(preview) {
  const edits = changes(live.document, draft).filter((change) => change.path !== "version");
  const typical = preview.typical_order;
  const liability = preview.liability;
  const gifts = Object.entries(preview.gifts_by_trigger || {});
  return [
    h("h3", {}, "Your changes"),
    edits.length
      ? h(
          "ul",
          { class: "changes" },
          edits.map((change) =>
            h("li", {}, h("code", {}, change.path), `: ${shown(change.before)} → ${shown(change.after)}`),
          ),
        )
      : h("p", { class: "empty" }, "None: this is the live program."),
    h("h3", {}, "Tier moves when published"),
    h("p", { class: "headline" }, `${movesSentence(preview)[0].toUpperCase()}${movesSentence(preview).slice(1)}`),
    table(
      "Members moving tier at once",
      [
        { label: "From", cell: (move) => levelName(move.from) },
        { label: "To", cell: (move) => levelName(move.to) },
        { label: "Members", cell: (move) => num(move.members), num: true },
      ],
      preview.tier_moves,
      "",
    ),
    h(
      "p",
      {},
      `${num(preview.pending_downgrades)} member${preview.pending_downgrades === 1 ? "" : "s"} would sit below `,
      `their tier's threshold and move down after the ${draft.tiers.downgrade_grace_days}-day grace.`,
    ),
    h("h3", {}, "Points liability"),
    facts([
      ["Points outstanding", num(liability.points_outstanding)],
      ["Value per point", `${liability.value_per_point_current} → ${liability.value_per_point_candidate}`],
      ["Value (minor units)", `${num(liability.value_current)} → ${num(liability.value_candidate)}`],
      ["Change", `${liability.change >= 0 ? "+" : ""}${num(liability.change)}`],
    ]),
    h("h3", {}, "A typical order"),
    table(
      `Points for an order of ${num(typical.subtotal)} (minor units), per tier`,
      [
        { label: "Tier", cell: ([code]) => levelName(code) },
        { label: "Now", cell: ([code]) => num(typical.points_by_tier_current[code]), num: true },
        { label: "After", cell: ([, points]) => num(points), num: true },
      ],
      Object.entries(typical.points_by_tier),
    ),
    h("h3", {}, "Gifts in the next 30 days"),
    preview.gifts_next_30_days === null || preview.gifts_next_30_days === undefined
      ? h("p", { class: "empty" }, "Not estimated.")
      : [
          h(
            "p",
            {},
            `${num(preview.gifts_next_30_days)} gift${preview.gifts_next_30_days === 1 ? "" : "s"}, `,
            `${num(preview.gift_budget_next_30_days)} of budget (minor units).`,
          ),
          gifts.length
            ? table(
                "Gifts per trigger",
                [
                  { label: "Trigger", cell: ([trigger]) => trigger },
                  { label: "Gifts", cell: ([, count]) => num(count), num: true },
                ],
                gifts,
              )
            : null,
        ],
  ];
}

export function wire() {
  byId("preview").addEventListener("click", preview);
  byId("publish").addEventListener("click", publish);
  byId("reload-program").addEventListener("click", reload);
  byId("program-form").addEventListener("submit", (event) => {
    event.preventDefault();
    preview();
  });
}
