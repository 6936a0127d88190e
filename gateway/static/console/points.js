// Points (积分奖惩), for community workers: the budget, awards and deductions, and a second worker's
// approval. The API decides: the worker who made an award is refused (403), and the console says so.
import { api, current } from "./api.js";
import { $, allItems, element, explain, field, say, when } from "./dom.js";
import { t } from "./i18n.js";
import { poll, stopPolling } from "./live.js";

const POINTS_POLL_MS = 4000;

function awardRow(award, me) {
  return element(
    "tr",
    { "data-award": award.id, "data-status": award.status },
    element("td", { text: when(award.created_at) }),
    element("td", { text: award.resident_id }),
    element("td", { text: String(award.points) }),
    element("td", { text: award.reason }),
    element("td", { text: award.created_by === me ? t("award.byMe") : award.created_by.slice(0, 8) }),
    element(
      "td",
      { class: "actions" },
      element("button", { type: "button", "data-decide": "approve", text: t("award.approve"), onclick: () => decide(award, "approve") }),
      element("button", { type: "button", "data-decide": "reject", text: t("award.reject"), onclick: () => decide(award, "reject") }),
    ),
  );
}

export async function openPoints() {
  const [budget, pending] = await Promise.all([api("GET", "governance/budget"), allItems("governance/awards?status=pending&limit=200")]);
  $("budget").replaceChildren(
    ...field("budget.funded", budget.funded),
    ...field("budget.granted", budget.granted),
    ...field("budget.clawedBack", budget.clawed_back),
    ...field("budget.remaining", budget.remaining),
  );
  const rows = pending.map((award) => awardRow(award, current().subject));
  $("award-rows").replaceChildren(...rows);
  $("awards-empty").hidden = rows.length > 0;
  poll(() => (document.activeElement?.closest("#award-form") ? null : reloadPoints()), POINTS_POLL_MS);
}

export async function reloadPoints() {
  stopPolling();
  await openPoints().catch(explain);
}

async function decide(award, how) {
  try {
    const decided = await api("POST", `governance/awards/${award.id}/${how}`);
    say("");
    $("points").dataset.decided = `${decided.id}:${decided.status}`;
    await reloadPoints();
  } catch (error) {
    explain(error, { action: true });
  }
}

async function createAward(form) {
  const values = Object.fromEntries(new FormData(form));
  try {
    const award = await api("POST", "governance/awards", { resident_id: values.resident_id, points: Number(values.points), reason: values.reason });
    form.reset();
    say(award.status === "pending" ? t("award.pending") : "");
    await reloadPoints();
  } catch (error) {
    explain(error, { action: true });
  }
}

export function wirePoints() {
  $("award-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createAward(event.target);
  });
}
