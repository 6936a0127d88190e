// Collective decisions (议事决策), for staff: the community's decisions and polls, newest first, with
// their window, status and result once closed. A community worker drafts one and opens a draft; the
// closing job counts the ballots at the closing time (governance has no route to close earlier).
import { api } from "./api.js";
import { $, allItems, cells, element, explain, fillRows, hasRole, say, when } from "./dom.js";
import { t } from "./i18n.js";
import { stopPolling } from "./live.js";

// The closed decision's outcome and its count per option (the result is the closing event's counts).
function outcome(result) {
  if (!result) return "—";
  const counts = (result.options ?? []).map((o) => `${o.option} ${o.ballots}`);
  return [t(`decision.${result.outcome}`), ...counts].join(" · ");
}

function decisionRow(d, worker) {
  const open = worker && d.status === "draft" ? element("button", { type: "button", "data-open": d.id, text: t("decision.openNow"), onclick: () => openDraft(d) }) : "—";
  return cells({ "data-decision": d.id, "data-status": d.status }, d.question, t(`decision.${d.kind}`), `${when(d.opens_at)} – ${when(d.closes_at)}`, t(`decision.${d.status}`), outcome(d.result), open);
}

export async function openDecisions() {
  stopPolling();
  const worker = hasRole("community_worker");
  $("decision-form").hidden = !worker;
  const decisions = await allItems("governance/decisions");
  fillRows("decision-rows", "decisions-empty", decisions.map((d) => decisionRow(d, worker)));
}

async function openDraft(decision) {
  try {
    const opened = await api("POST", `governance/decisions/${decision.id}/open`);
    say("");
    $("decisions").dataset.opened = opened.id;
    await openDecisions();
  } catch (error) {
    explain(error, { action: true });
  }
}

// The form's times are the community's (Asia/Shanghai), whatever this machine's zone.
const inCommunity = (local) => `${local}:00+08:00`;

async function draft(form) {
  const f = form.elements;
  const options = f.options.value.split(/[\n,，、]/).map((o) => o.trim()).filter(Boolean);
  const body = { kind: f.kind.value, question: f.question.value.trim(), opens_at: inCommunity(f.opens_at.value), closes_at: inCommunity(f.closes_at.value) };
  try {
    // Not repeated after a 503: a second draft would be a second decision.
    const drafted = await api("POST", "governance/decisions", f.kind.value === "household_poll" ? { ...body, options } : body);
    form.reset();
    say("");
    $("decisions").dataset.drafted = drafted.id;
    await openDecisions();
  } catch (error) {
    explain(error, { action: true });
  }
}

export function wireDecisions() {
  $("decision-form").addEventListener("submit", (event) => {
    event.preventDefault();
    draft(event.target);
  });
}
