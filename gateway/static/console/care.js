// Care and the pool (互助与公益池), for stewards and community workers: service hours awaiting the
// elder's confirmation and those in dispute (with the reason given), and the time-bank pool's
// balance. A worker may confirm or dispute for the elder; the API decides who may.
import { api } from "./api.js";
import { $, allItems, cells, element, explain, field, fillRows, hours, say, shortId, when } from "./dom.js";
import { t, term } from "./i18n.js";
import { poll } from "./live.js";

const CARE_POLL_MS = 5000;

// A client-chosen id that makes a retry safe (crypto.randomUUID needs a secure context; an intranet may serve http).
function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function settle(transfer, how) {
  const reason = $(`reason-${transfer.id}`)?.value.trim();
  if (how === "dispute" && !reason) return say(t("care.reasonNeeded"));
  try {
    // The body's id makes the service answer a repeat with the first result: safe to repeat after a 503.
    const body = how === "dispute" ? { id: newId(), reason } : { id: newId() };
    await api("POST", `timebank/transfers/${transfer.id}/${how}`, body, { repeatable: true });
    say("");
    $("care").dataset.settled = `${transfer.id}:${how}`;
    document.activeElement?.blur(); // the row's button held the focus, which keeps the rows from being redrawn
    await openCare();
  } catch (error) {
    explain(error, { action: true });
  }
}

function awaitingRow(x) {
  const reason = element("input", { id: `reason-${x.id}`, maxlength: "200", "aria-label": t("care.reason") });
  const buttons = element(
    "span",
    { class: "actions" },
    reason,
    element("button", { type: "button", "data-settle": "confirm", text: t("care.confirm"), onclick: () => settle(x, "confirm") }),
    element("button", { type: "button", "data-settle": "dispute", text: t("care.dispute"), onclick: () => settle(x, "dispute") }),
  );
  return cells({ "data-transfer": x.id }, when(x.created_at), term(x.service_type), `${hours(x.amount_minutes)} h`, shortId(x.care_request_id), when(x.timeout_at), buttons);
}

export async function openCare() {
  const [pool, awaiting, disputed] = await Promise.all([
    api("GET", "timebank/pool"),
    allItems("timebank/pending-transfers?state=awaiting&limit=200"),
    allItems("timebank/pending-transfers?state=disputed&limit=200"),
  ]);
  $("pool-fields").replaceChildren(
    ...field("pool.balance", `${hours(pool.pool.balance.available_minutes)} h`),
    ...field("pool.community", `${hours(pool.community_account.balance.available_minutes)} h`),
    ...field("pool.pending", `${pool.open_pending_count} · ${hours(pool.open_pending_minutes)} h`),
  );
  // Not while someone is typing a reason in a row: a redraw would take their text.
  if (!$("awaiting-rows").contains(document.activeElement)) {
    fillRows("awaiting-rows", "awaiting-empty", awaiting.map(awaitingRow));
  }
  fillRows("disputed-rows", "disputed-empty", disputed.map((x) => cells({ "data-transfer": x.id }, when(x.created_at), term(x.service_type), `${hours(x.amount_minutes)} h`, shortId(x.care_request_id), term(x.resolution), x.resolution_reason, when(x.resolved_at))));
  poll(() => openCare().catch(explain), CARE_POLL_MS);
}
