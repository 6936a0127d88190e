// Home (今日概况): the community's figures today, each a link to the list behind it. Every figure is
// asked of its own service at once; one the role may not read (403) or whose service is down is left
// out rather than shown as zero, and the tickets' figures are the property staff's only; a security
// guard's home is the watch's: alarms awaiting an answer and devices offline.
import { api, current } from "./api.js";
import { $, allItems, daysBefore, element, hasRole, hours, localDay, percent } from "./dom.js";
import { t, term } from "./i18n.js";
import { poll } from "./live.js";
import { transitions } from "./tickets.js";

const HOME_POLL_MS = 10000;

function figure(key, value, href, label = t(key)) {
  return element("li", { "data-figure": key }, element("a", { href }, element("strong", { text: String(value) }), label));
}

// This week (Monday to today) in property's SLA statistics, summed over the categories.
async function weekOnTime() {
  const today = localDay();
  const monday = daysBefore(today, (new Date(`${today}T12:00:00Z`).getUTCDay() + 6) % 7);
  const stats = await api("GET", `property/reports/sla?by=category&since=${monday}&until=${today}`);
  const sum = stats.groups.reduce((s, g) => ({ on_time: s.on_time + g.on_time, completed: s.completed + g.completed }), { on_time: 0, completed: 0 });
  return [figure("fig.weekOnTime", percent(sum.on_time, sum.completed), "#/queue")];
}

// Open tickets by status, the overdue ones, and what is mine and the community's (property staff).
async function ticketFigures() {
  const [mine, community, open, overdue] = await Promise.all([
    api("GET", "property/queue?scope=mine&limit=200"),
    api("GET", "property/queue?scope=community&limit=200"),
    allItems("property/tickets?limit=200"),
    allItems("property/tickets?limit=200&breached=true"),
  ]);
  const openStatuses = (await transitions()).open_statuses;
  const byStatus = {};
  for (const ticket of open) byStatus[ticket.status] = (byStatus[ticket.status] ?? 0) + 1;
  const items = [
    figure("fig.mine", mine.items.length, "#/queue"),
    figure("fig.community", community.items.length, "#/queue"),
    figure("fig.overdue", overdue.filter((x) => openStatuses.includes(x.status)).length, "#/queue"),
    ...openStatuses.filter((s) => byStatus[s]).map((s) => figure(`fig.open.${s}`, byStatus[s], `#/queue/status=${s}`, `${t("fig.open")} · ${term(s)}`)),
  ];
  if (hasRole("steward")) {
    const month = await api("GET", `property/staff/${current().subject}/figures?month=${localDay().slice(0, 7)}`);
    const rate = month.on_time_rate == null ? "—" : percent(month.on_time, month.completed);
    items.push(figure("fig.onTime", rate, "#/queue"), figure("fig.rating", month.average_rating ?? "—", "#/queue"));
  }
  return items;
}

async function timebankFigures() {
  const [summary, pool, disputed] = await Promise.all([
    api("GET", `timebank/summary?month=${localDay().slice(0, 7)}`),
    api("GET", "timebank/pool"),
    allItems("timebank/pending-transfers?state=disputed&limit=200"),
  ]);
  return [
    figure("fig.hoursServed", hours(summary.minutes_served), "#/care"),
    figure("fig.awaiting", pool.open_pending_count, "#/care"),
    figure("fig.disputed", disputed.length, "#/care"),
  ];
}

async function pointsFigures() {
  const month = localDay().slice(0, 7);
  const [board, budget] = await Promise.all([api("GET", `governance/leaderboard?month=${month}&limit=1`), api("GET", "governance/budget")]);
  const items = [
    figure("fig.pointsMonth", board.total, "#/points"),
    figure("fig.budget", budget.remaining, "#/points"),
  ];
  if (hasRole("community_worker")) {
    const pending = await allItems("governance/awards?status=pending&limit=200");
    items.push(figure("fig.pendingAwards", pending.length, "#/points"));
  }
  return items;
}

async function parkingFigures() {
  const now = await api("GET", "parking/occupancy");
  return [figure("fig.parkingNow", `${now.occupied_now}/${now.spots}`, "#/parking")];
}

// The watch's figures (安防): alarms no one has answered yet and devices offline now.
async function securityFigures() {
  const [open, offline] = await Promise.all([
    allItems("security/alarms?open=true&limit=200"),
    allItems("security/devices?offline=true&limit=200"),
  ]);
  return [
    figure("fig.openAlarms", open.filter((a) => !a.acknowledged_at).length, "#/security"),
    figure("fig.offlineDevices", offline.length, "#/security"),
  ];
}

// Each group of figures its role may read; a group refused or unreachable is left out.
function groupsFor() {
  const groups = [weekOnTime(), pointsFigures(), parkingFigures(), securityFigures()];
  if (hasRole("steward", "property_admin")) groups.unshift(ticketFigures());
  if (hasRole("steward", "community_worker")) groups.push(timebankFigures());
  return groups;
}

export async function openHome() {
  // A guard (保安) reads the watch's figures only; anyone else outside the staff is refused the tickets'.
  const others = hasRole("security_guard") ? [securityFigures()] : [ticketFigures()];
  const groups = hasRole("steward", "property_admin", "community_worker") ? groupsFor() : others;
  const settled = await Promise.allSettled(groups);
  const refused = settled.filter((s) => s.status === "rejected");
  // Nothing at all to show: the role may use no part of this screen, and the console says why.
  if (refused.length === settled.length) throw refused[0].reason;
  $("figures").replaceChildren(...settled.flatMap((s) => (s.status === "fulfilled" ? s.value : [])));
  poll(() => refreshHome(), HOME_POLL_MS);
}

export async function refreshHome() {
  if (!$("home").hidden && !document.querySelector("#figures a:focus")) await openHome().catch(() => {});
}
