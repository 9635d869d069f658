// The program document as a form: every field of loyalty/program.py, with labels and hints.
// Fields the form does not know are kept as they came (the editor edits the document in place).

const int = (key, label, extra = {}) => ({ type: "int", key, label, ...extra });
const decimal = (key, label, extra = {}) => ({ type: "number", key, label, ...extra });
const text = (key, label, extra = {}) => ({ type: "text", key, label, ...extra });
const choice = (key, label, options, extra = {}) => ({ type: "select", key, label, options, ...extra });
const group = (key, label, fields, extra = {}) => ({ type: "group", key, label, fields, ...extra });

const MULTIPLIER = { min: 0, step: "0.05", hint: "1.0 changes nothing" };

const gift = {
  type: "optional",
  key: "gift",
  label: "Gives a gift",
  make: () => ({ kind: "voucher", value: 500, product_id: null }),
  fields: [
    choice("kind", "Gift", ["voucher", "product", "points"]),
    int("value", "Value", { min: 0, hint: "minor units for a voucher (its cost against the budget), points for points" }),
    text("product_id", "Product id", { nullable: true, hint: "for a product gift" }),
  ],
};

const RULES = {
  category_bonus: {
    label: "Category bonus",
    make: () => ({ kind: "category_bonus", category: "", multiplier: 2 }),
    fields: [text("category", "Category"), decimal("multiplier", "Multiplier", MULTIPLIER)],
  },
  product_bonus: {
    label: "Product bonus",
    make: () => ({ kind: "product_bonus", product_ids: [], multiplier: 2 }),
    fields: [
      { type: "list", key: "product_ids", label: "Product ids", of: "text", hint: "separated by commas" },
      decimal("multiplier", "Multiplier", MULTIPLIER),
    ],
  },
  campaign: {
    label: "Campaign",
    make: () => ({ kind: "campaign", name: "", starts_at: "", ends_at: "", multiplier: 2, category: null }),
    fields: [
      text("name", "Name"),
      text("starts_at", "Starts at", { hint: "with a time zone, e.g. 2026-12-01T00:00:00+01:00" }),
      text("ends_at", "Ends at", { hint: "with a time zone" }),
      decimal("multiplier", "Multiplier", MULTIPLIER),
      text("category", "Only category", { nullable: true, hint: "empty: the whole order" }),
    ],
  },
  first_order_bonus: {
    label: "First order bonus",
    make: () => ({ kind: "first_order_bonus", points: 100 }),
    fields: [int("points", "Points", { min: 1 })],
  },
  birthday_month: {
    label: "Birthday month",
    make: () => ({ kind: "birthday_month", multiplier: 2 }),
    fields: [decimal("multiplier", "Multiplier", MULTIPLIER)],
  },
};

const TRIGGERS = {
  birthday: {
    label: "Birthday",
    make: () => ({ kind: "birthday", days_before: 0, gift: null }),
    fields: [int("days_before", "Days before", { min: 0, max: 60 }), gift],
  },
  anniversary: { label: "Membership anniversary", make: () => ({ kind: "anniversary", gift: null }), fields: [gift] },
  milestone: {
    label: "Order milestone",
    make: () => ({ kind: "milestone", orders: [5, 10], gift: null }),
    fields: [{ type: "list", key: "orders", label: "At orders", of: "int", hint: "counts separated by commas" }, gift],
  },
  tier_welcome: { label: "Tier welcome", make: () => ({ kind: "tier_welcome", gift: null }), fields: [gift] },
  service_recovery: {
    label: "Service recovery",
    make: () => ({ kind: "service_recovery", gift: null }),
    fields: [gift],
  },
  win_back: {
    label: "Win back",
    make: () => ({ kind: "win_back", overdue_factor: 2, gift: null }),
    fields: [decimal("overdue_factor", "Overdue factor", { min: 1, step: "0.5", hint: "times the member's usual gap" }), gift],
  },
  replenish: {
    label: "Replenish",
    make: () => ({ kind: "replenish", days_before: 3 }),
    fields: [int("days_before", "Days before", { min: 0, max: 60 })],
  },
  tier_within_reach: {
    label: "Tier within reach",
    make: () => ({ kind: "tier_within_reach", within_percent: 10 }),
    fields: [decimal("within_percent", "Within percent", { min: 0, max: 100 })],
  },
  points_expiring: {
    label: "Points expiring",
    make: () => ({ kind: "points_expiring", days_before: 30 }),
    fields: [int("days_before", "Days before", { min: 1, max: 365 })],
  },
  recommended_next: { label: "Recommended next", make: () => ({ kind: "recommended_next" }), fields: [] },
};

export const PROGRAM = [
  group("points", "Points", [
    decimal("per_currency_unit", "Points per currency unit", { min: 0, step: "0.1", hint: "per major unit of eligible subtotal" }),
    int("expiry_days", "Expire after (days)", { min: 0, hint: "0: never" }),
    int("pending_days", "Pending for (days)", { min: 0, hint: "the return window" }),
  ]),
  group("tiers", "Tiers", [
    choice("metric", "Qualify by", ["spend", "points", "orders"], { hint: "spend is in minor units, net of refunds" }),
    int("window_days", "Over the last (days)", { min: 1, max: 3650 }),
    int("downgrade_grace_days", "Downgrade grace (days)", { min: 0 }),
    {
      type: "table",
      key: "levels",
      label: "Levels",
      item: "Level",
      make: () => ({ code: "", name: "", threshold: 0, multiplier: 1 }),
      columns: [
        text("code", "Code"),
        text("name", "Name"),
        int("threshold", "Threshold", { min: 0 }),
        decimal("multiplier", "Multiplier", { min: 0, step: "0.05" }),
      ],
    },
  ]),
  { type: "union", key: "rules", label: "Earning rules", item: "Rule", kinds: RULES },
  {
    type: "table",
    key: "rewards",
    label: "Rewards",
    item: "Reward",
    make: () => ({ id: "", name: "", cost: 500, kind: "voucher", value: 500 }),
    columns: [
      text("id", "Id"),
      text("name", "Name"),
      int("cost", "Cost (points)", { min: 1 }),
      choice("kind", "Kind", ["voucher", "discount_percent", "free_shipping", "product"]),
      int("value", "Value", { min: 0 }),
    ],
  },
  group("care", "Care", [
    int("gift_budget_per_month", "Gift budget per month", { min: 0, hint: "minor units" }),
    int("member_gift_cooldown_days", "Gift cooldown per member (days)", { min: 0 }),
    int("member_message_cap_days", "At most one message per member every (days)", { min: 0, hint: "0: no cap" }),
    group("quiet_hours", "Quiet hours", [
      { type: "time", key: "start", label: "From" },
      { type: "time", key: "end", label: "Until" },
    ]),
    { type: "union", key: "triggers", label: "Triggers", item: "Trigger", kinds: TRIGGERS },
  ]),
];
