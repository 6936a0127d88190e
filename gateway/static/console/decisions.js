// Collective decisions (议事决策), for staff: the community's decisions and polls, newest first, with
// their window, status and result once closed.
import { allItems, cells, fillRows, when } from "./dom.js";
import { t } from "./i18n.js";
import { stopPolling } from "./live.js";

// The closed decision's outcome and its count per option (the result is the closing event's counts).
function outcome(result) {
  if (!result) return "—";
  const counts = (result.options ?? []).map((o) => `${o.option} ${o.ballots}`);
  return [t(`decision.${result.outcome}`), ...counts].join(" · ");
}

export async function openDecisions() {
  stopPolling();
  const decisions = await allItems("governance/decisions");
  fillRows(
    "decision-rows",
    "decisions-empty",
    decisions.map((d) => cells({ "data-decision": d.id, "data-status": d.status }, d.question, t(`decision.${d.kind}`), `${when(d.opens_at)} – ${when(d.closes_at)}`, t(`decision.${d.status}`), outcome(d.result))),
  );
}
