// Outbound webhooks: the endpoints, their deliveries (dead letters first to hand), and replay.
import { api, segment } from "./api.js";
import { announce, busy, byId, facts, fill, h, num, table, when } from "./dom.js";

let cursors = [null];
let items = [];

export async function show() {
  const { data } = await busy(byId("endpoints"), () => api("/v1/webhook-endpoints", { query: { limit: 200 } }));
  fill(
    byId("endpoints"),
    h("h2", {}, "Endpoints"),
    table(
      "Webhook endpoints",
      [
        { label: "Endpoint", cell: (e) => e.endpoint_id },
        { label: "URL", cell: (e) => e.url },
        { label: "Events", cell: (e) => e.events.join(", ") },
        { label: "Enabled", cell: (e) => (e.enabled ? "yes" : "no") },
      ],
      data.items,
      "No webhook endpoints: Patron sends no outbound webhooks.",
    ),
  );
  await load(true);
}

async function load(reset) {
  if (reset) {
    cursors = [null];
    items = [];
  }
  const list = byId("deliveries-list");
  const status = byId("deliveries-status").value;
  const { data } = await busy(list, () =>
    api("/v1/deliveries", { query: { status, cursor: cursors[cursors.length - 1], limit: 50 } }),
  );
  items.push(...data.items);
  render(data.next_cursor);
}

const STATUS = { pending: "pending", failed: "failed, will retry", delivered: "delivered", dead: "dead letter" };

function render(next) {
  fill(
    byId("deliveries-list"),
    h("h2", {}, "Deliveries"),
    table(
      "Deliveries, newest first",
      [
        {
          label: "Delivery",
          cell: (d) => h("button", { type: "button", class: "link", onclick: () => detail(d.delivery_id) }, d.delivery_id),
        },
        { label: "Event", cell: (d) => d.event_type },
        { label: "Customer", cell: (d) => d.customer_id ?? "—" },
        { label: "Status", cell: (d) => h("span", { class: `badge ${d.status}` }, STATUS[d.status] ?? d.status) },
        { label: "Attempts", cell: (d) => num(d.attempt_count), num: true },
        { label: "Last result", cell: (d) => d.last_error ?? (d.last_status_code ? `HTTP ${d.last_status_code}` : "—") },
        { label: "Created", cell: (d) => when(d.created_at) },
        {
          label: "Action",
          cell: (d) =>
            d.status === "pending"
              ? "—"
              : h(
                  "button",
                  { type: "button", "aria-label": `Replay ${d.delivery_id}`, onclick: () => replay(d.delivery_id) },
                  "Replay",
                ),
        },
      ],
      items,
      "No deliveries with this status.",
    ),
    next
      ? h(
          "button",
          {
            type: "button",
            onclick: async () => {
              cursors.push(next);
              await load(false);
            },
          },
          "More deliveries",
        )
      : null,
  );
}

async function replay(deliveryId) {
  try {
    const { data } = await api(`/v1/deliveries/${segment(deliveryId)}/replay`, { method: "POST" });
    items = items.map((item) => (item.delivery_id === deliveryId ? data : item));
    render(null);
    announce(`Replay of ${deliveryId} queued: it is ${STATUS[data.status] ?? data.status} again.`, "success");
    byId("deliveries-list").querySelector(`[aria-label="Replay ${CSS.escape(deliveryId)}"]`)?.focus();
  } catch (error) {
    announce(`Not replayed: ${error.message}`, "error");
  }
}

async function detail(deliveryId) {
  const panel = byId("delivery-detail");
  const { data } = await busy(panel, () => api(`/v1/deliveries/${segment(deliveryId)}`));
  fill(byId("delivery-title"), `Delivery ${data.delivery_id}`);
  fill(
    byId("delivery-body"),
    facts([
      ["Event", data.event_type],
      ["Status", STATUS[data.status] ?? data.status],
      ["Endpoint", data.endpoint_id],
      ["webhook-id", data.message_id],
      ["Next attempt", when(data.next_attempt_at)],
      ["Dead since", when(data.dead_at)],
    ]),
    table(
      "Attempts, oldest first",
      [
        { label: "Series", cell: (a) => num(a.series), num: true },
        { label: "Attempt", cell: (a) => num(a.attempt), num: true },
        { label: "Started", cell: (a) => when(a.started_at) },
        { label: "Status code", cell: (a) => a.status_code ?? "—", num: true },
        { label: "Latency (ms)", cell: (a) => num(a.latency_ms), num: true },
        { label: "Error", cell: (a) => a.error ?? "—" },
      ],
      data.attempts,
      "Not attempted yet.",
    ),
    h("h3", {}, "Payload"),
    h("pre", { class: "payload", tabindex: "0" }, JSON.stringify(data.data, null, 2)),
  );
  panel.hidden = false;
  byId("delivery-title").focus();
}

export function wire() {
  byId("deliveries-filter").addEventListener("submit", async (event) => {
    event.preventDefault();
    byId("delivery-detail").hidden = true;
    await load(true);
  });
}
