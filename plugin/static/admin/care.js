// Care: the month's gift budget use and each trigger's conversions.
import { api } from "./api.js";
import { busy, byId, facts, fill, h, num, percent, table } from "./dom.js";

export async function show() {
  const body = byId("care-body");
  const month = byId("care-month").value;
  const { data } = await busy(body, () => api("/v1/care/report", { query: { month } }));
  if (!month) byId("care-month").value = data.month;
  const used = data.budget ? data.budget_used / data.budget : 0;
  const sent = data.triggers.reduce((sum, t) => sum + t.sent, 0);
  const converted = data.triggers.reduce((sum, t) => sum + t.converted, 0);
  fill(
    body,
    h("h2", {}, `Budget, ${data.month}`),
    h(
      "div",
      { class: "budget" },
      h("label", { for: "care-budget-meter" }, "Gift budget used"),
      h("meter", { id: "care-budget-meter", min: "0", max: String(data.budget || 1), value: String(data.budget_used) }),
      h(
        "p",
        {},
        data.budget
          ? `${num(data.budget_used)} of ${num(data.budget)} (minor units), ${percent(used)}.`
          : `${num(data.budget_used)} used; the program sets no gift budget.`,
      ),
    ),
    facts([
      ["Actions sent", num(sent)],
      ["Converted", `${num(converted)}${sent ? ` (${percent(converted / sent)})` : ""}`],
      ["Counted as converted", `a paid order within ${data.attribution_days} days of delivery`],
    ]),
    h("h2", {}, "Per trigger"),
    table(
      `Care actions in ${data.month}`,
      [
        { label: "Trigger", cell: (t) => t.trigger },
        { label: "Kind", cell: (t) => t.kind },
        { label: "Sent", cell: (t) => num(t.sent), num: true },
        { label: "Cost", cell: (t) => num(t.cost), num: true },
        { label: "Converted", cell: (t) => num(t.converted), num: true },
        { label: "Conversion", cell: (t) => percent(t.conversion), num: true },
      ],
      data.triggers,
      "No care actions this month.",
    ),
  );
}

export function wire() {
  byId("care-filter").addEventListener("submit", async (event) => {
    event.preventDefault();
    await show();
  });
}
