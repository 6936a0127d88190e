// My queue (我的工单队列): my tickets and the community's in one list, overdue first, with an SLA
// countdown; the unit search asks the server, the other filters narrow what is loaded.
import { api, download } from "./api.js";
import { $, element, explain, localDay } from "./dom.js";
import { t, term } from "./i18n.js";
import { poll } from "./live.js";
import { countdown } from "./tickets.js";

const QUEUE_POLL_MS = 2000;
const SCOPES = ["mine", "community"];
let queue = []; // [{ticket, scope}]

async function loadQueue() {
  const unit = $("filters").unit.value.trim();
  const search = unit ? `&unit=${encodeURIComponent(unit)}` : "";
  const pages = await Promise.all(SCOPES.map((scope) => api("GET", `property/queue?scope=${scope}&limit=200${search}`)));
  queue = pages.flatMap((page, i) => page.items.map((ticket) => ({ ticket, scope: SCOPES[i] })));
  // Overdue first, then by the deadline each ticket races.
  queue.sort((a, b) => new Date(a.ticket.due_at) - new Date(b.ticket.due_at));
}

function fillSelect(select, values, chosen) {
  const options = [element("option", { value: "", text: t("filter.all") })];
  for (const value of [...new Set(values)].sort()) {
    const option = element("option", { value, text: select.name === "building" ? value.slice(0, 8) : term(value) });
    if (value === chosen) option.selected = true;
    options.push(option);
  }
  select.replaceChildren(...options);
}

function row({ ticket, scope }, now) {
  const due = new Date(ticket.due_at).getTime();
  const late = due < now;
  const soon = !late && due - now < 3600000;
  return element(
    "tr",
    { class: late ? "overdue" : soon ? "soon" : "", "data-ticket": ticket.id, "data-status": ticket.status },
    element("td", { "data-due": ticket.due_at, text: countdown(ticket.due_at, now) }),
    element("td", { text: term(ticket.status) }),
    element("td", { text: term(ticket.category) }),
    element("td", { text: ticket.building_id.slice(0, 8) }),
    element("td", {}, element("a", { href: `#/ticket/${ticket.id}`, text: ticket.description })),
    element("td", { text: t(`scope.${scope}`) }),
  );
}

function renderQueue() {
  const form = $("filters");
  const chosen = Object.fromEntries(new FormData(form));
  fillSelect(form.status, queue.map((x) => x.ticket.status), chosen.status);
  fillSelect(form.building, queue.map((x) => x.ticket.building_id), chosen.building);
  fillSelect(form.category, queue.map((x) => x.ticket.category), chosen.category);
  const now = Date.now();
  const rows = queue
    .filter(({ ticket }) => (!chosen.status || ticket.status === chosen.status) && (!chosen.building || ticket.building_id === chosen.building))
    .filter(({ ticket }) => !chosen.category || ticket.category === chosen.category)
    .map((entry) => row(entry, now));
  $("queue-rows").replaceChildren(...rows);
  $("queue-empty").hidden = rows.length > 0;
}

export function reloadQueue() {
  return loadQueue().then(renderQueue).catch(explain);
}

export async function openQueue(preset) {
  if (preset?.startsWith("status=")) fillSelect($("filters").status, [preset.slice(7)], preset.slice(7));
  await loadQueue();
  renderQueue();
  poll(reloadQueue, QUEUE_POLL_MS);
}

// This month's tickets, or the stewards' SLA figures this month, as the service's CSV (UTF-8 with a BOM).
async function exportCsv(what) {
  const until = localDay();
  const since = `${until.slice(0, 8)}01`;
  const path = what === "tickets" ? "property/reports/tickets.csv" : "property/reports/sla.csv";
  await download(`${path}?since=${since}&until=${until}${what === "sla" ? "&by=steward" : ""}`, `${what}-${since}-${until}.csv`);
}

export function wireQueue() {
  $("filters").addEventListener("change", (event) => (event.target.name === "unit" ? reloadQueue() : renderQueue()));
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const [id, what] of [["export-tickets", "tickets"], ["export-sla", "sla"]]) $(id).addEventListener("click", () => exportCsv(what).catch(explain));
  // Countdowns move every second without asking the server.
  setInterval(() => {
    for (const cell of document.querySelectorAll("td[data-due]")) cell.textContent = countdown(cell.dataset.due);
  }, 1000);
}
