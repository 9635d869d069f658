// Members: search and page through them; one member's profile and points ledger.
import { api, segment } from "./api.js";
import { announce, busy, byId, facts, fill, h, num, table, when } from "./dom.js";
import { liveProgram } from "./program.js";

const PAGE = 25;
const query = { q: "", tier: "" };
let pages = [null]; // the cursor of each page shown so far; the last is the current one

async function levels() {
  const program = await liveProgram();
  return program.tiers.levels;
}

const levelName = (all, code) => all.find((level) => level.code === code)?.name ?? code;

export async function showList() {
  const all = await levels();
  const select = byId("members-tier");
  const chosen = select.value;
  fill(
    select,
    h("option", { value: "" }, "Any"),
    all.map((level) => h("option", { value: level.code, selected: level.code === chosen }, level.name)),
  );
  await loadPage();
}

async function loadPage() {
  const list = byId("members-list");
  const cursor = pages[pages.length - 1];
  const { data } = await busy(list, () =>
    api("/v1/members", { query: { q: query.q, tier: query.tier, cursor, limit: PAGE } }),
  );
  const all = await levels();
  const first = (pages.length - 1) * PAGE + 1;
  fill(
    list,
    table(
      data.items.length ? `Members ${first}–${first + data.items.length - 1}` : "Members",
      [
        { label: "Customer", cell: (m) => h("a", { href: `#/members/${segment(m.customer_id)}` }, m.customer_id) },
        { label: "Name", cell: (m) => m.name ?? "—" },
        { label: "Email", cell: (m) => m.email ?? "—" },
        { label: "Tier", cell: (m) => levelName(all, m.tier) },
        { label: "Points", cell: (m) => num(m.balance), num: true },
        { label: "Orders", cell: (m) => num(m.orders_count), num: true },
        { label: "Updated", cell: (m) => when(m.updated_at) },
      ],
      data.items,
      query.q || query.tier ? "No member matches." : "No members yet.",
    ),
    h(
      "div",
      { class: "pager" },
      pages.length > 1
        ? h("button", { type: "button", onclick: () => turn(() => pages.pop()) }, "Previous page")
        : null,
      data.next_cursor
        ? h("button", { type: "button", onclick: () => turn(() => pages.push(data.next_cursor)) }, "Next page")
        : null,
    ),
  );
}

async function turn(move) {
  move();
  await loadPage();
  byId("members-list").querySelector("caption")?.setAttribute("tabindex", "-1");
  byId("members-list").querySelector("caption")?.focus();
}

export async function showMember(customerId) {
  const body = byId("member-body");
  fill(byId("member-title"), `Member ${customerId}`);
  const [{ data: member }, ledger, all] = await busy(body, () =>
    Promise.all([api(`/v1/members/${segment(customerId)}`), ledgerPage(customerId, null), levels()]),
  );
  const progress = member.tier.progress;
  const entries = [...ledger.entries];
  const ledgerHolder = h("div", {});
  const renderLedger = (next) => {
    fill(
      ledgerHolder,
      table(
        "Points ledger, newest first",
        [
          { label: "When", cell: (e) => when(e.created_at) },
          { label: "Kind", cell: (e) => e.kind },
          { label: "Points", cell: (e) => `${e.points > 0 ? "+" : ""}${num(e.points)}`, num: true },
          { label: "Why", cell: (e) => e.reason },
          { label: "Order", cell: (e) => e.order_id ?? "—" },
          { label: "Program", cell: (e) => (e.program_version ? `v${e.program_version}` : "—") },
          { label: "Expires", cell: (e) => when(e.expires_at) },
        ],
        entries,
        "No points yet.",
      ),
      next
        ? h(
            "button",
            {
              type: "button",
              onclick: async () => {
                const more = await ledgerPage(customerId, next);
                entries.push(...more.entries);
                renderLedger(more.next_cursor);
                announce(`${more.entries.length} older entries shown.`);
              },
            },
            "Older entries",
          )
        : null,
    );
  };
  renderLedger(ledger.next_cursor);
  fill(
    byId("member-title"),
    member.name ? `${member.name} (${member.customer_id})` : `Member ${member.customer_id}`,
  );
  fill(
    body,
    facts([
      ["Email", member.email ?? "—"],
      ["Tier", `${member.tier.name} since ${when(member.tier.since)}`],
      [
        "Progress",
        progress.next
          ? `${num(progress.current)} ${progress.metric}; ${num(progress.needed)} more to ${levelName(all, progress.next)}`
          : `${num(progress.current)} ${progress.metric}; top tier`,
      ],
      ["Points", `${num(member.points.balance)} (available ${num(member.points.available)}, pending ${num(member.points.pending)})`],
      ["Open cases", num(member.open_cases.length)],
    ]),
    h("h2", {}, "Recent orders"),
    table(
      "Latest orders",
      [
        { label: "Order", cell: (o) => o.order_id },
        { label: "Placed", cell: (o) => when(o.placed_at) },
        { label: "Subtotal", cell: (o) => `${num(o.subtotal)} ${o.currency}`, num: true },
        { label: "Refunded", cell: (o) => num(o.refunded), num: true },
        { label: "Points", cell: (o) => num(o.points), num: true },
        { label: "Status", cell: (o) => o.status },
      ],
      member.recent_orders,
      "No orders.",
    ),
    h("h2", {}, "Ledger"),
    ledgerHolder,
  );
}

async function ledgerPage(customerId, cursor) {
  const { data } = await api(`/v1/members/${segment(customerId)}/ledger`, { query: { cursor, limit: 50 } });
  return data;
}

export function wire() {
  byId("members-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    query.q = byId("members-q").value.trim();
    query.tier = byId("members-tier").value;
    pages = [null];
    await loadPage();
  });
}
