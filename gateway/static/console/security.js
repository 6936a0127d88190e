// Security (安防), for the guards (保安) and the staff who may read security data: alarms awaiting an
// answer first, each with its "acknowledge" (接警) button, then the answered ones with who and how fast;
// the devices, offline ones first; today's expected visitors per building; and one door's access
// events in a time range, page by page. The API decides who may read what; a refusal is shown as such.
import { api } from "./api.js";
import { $, allItems, cells, element, explain, fillRows, localDay, say, shortId, when } from "./dom.js";
import { t, term } from "./i18n.js";
import { poll } from "./live.js";

const SECURITY_POLL_MS = 5000;
const EVENTS_PAGE = 50;
// Beijing time, as the form's datetime-local fields are read and filled.
const inCommunity = (local) => `${local}:00+08:00`;
const COMMUNITY_CLOCK = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });

let door = null; // the door search on screen: {path, cursor}

// Buildings by id, to show a building's code rather than its id; a role that may not list them sees ids.
async function buildingNames() {
  try {
    const buildings = await allItems("property/buildings?limit=200", 1);
    return Object.fromEntries(buildings.map((b) => [b.id, b.name || b.code]));
  } catch {
    return {};
  }
}

// An alarm's urgent ticket in property (its incident is `alarm:<id>`), where the reader may see it.
async function alarmTickets() {
  try {
    const tickets = await allItems("property/tickets?limit=200", 1);
    return Object.fromEntries(tickets.filter((x) => x.incident_id?.startsWith("alarm:")).map((x) => [x.incident_id.slice(6), x.id]));
  } catch {
    return {};
  }
}

function seconds(from, to) {
  const s = Math.round((new Date(to) - new Date(from)) / 1000);
  return s < 120 ? t("security.seconds", { n: s }) : t("security.minutes", { n: Math.round(s / 60) });
}

async function acknowledge(alarm) {
  try {
    // Answering again changes nothing, so a busy service may be asked twice.
    await api("POST", `security/alarms/${alarm.id}/acknowledge`, undefined, { repeatable: true });
    say("");
    $("security").dataset.acknowledged = alarm.id;
    await reloadSecurity();
  } catch (error) {
    explain(error, { action: true });
  }
}

function ticketLink(ticketId) {
  return ticketId ? element("a", { href: `#/ticket/${ticketId}`, text: t("security.ticket") }) : "—";
}

function openAlarmRow(alarm, place, ticketId) {
  const answer = element("button", { type: "button", text: t("security.acknowledge") });
  answer.addEventListener("click", () => acknowledge(alarm));
  return cells({ "data-alarm": alarm.id }, term(`alarm.${alarm.kind}`), place(alarm.building_id), when(alarm.raised_at), ticketLink(ticketId), answer);
}

function answeredAlarmRow(alarm, place, ticketId) {
  const answered = alarm.acknowledged_at;
  return cells(
    { "data-alarm": alarm.id },
    term(`alarm.${alarm.kind}`),
    place(alarm.building_id),
    when(alarm.raised_at),
    answered ? shortId(alarm.acknowledged_by) : t("security.notAnswered"),
    answered ? seconds(alarm.raised_at, answered) : "—",
    alarm.cleared_at ? when(alarm.cleared_at) : "—",
    ticketLink(ticketId),
  );
}

function deviceRow(device, place) {
  const offline = device.offline_since != null;
  const state = offline ? t("security.offlineSince", { at: when(device.offline_since) }) : t("security.online");
  return cells({ "data-device": device.id, class: offline ? "overdue" : "" }, state, device.name, term(`device.${device.kind}`), place(device.building_id), when(device.last_seen_at));
}

function visitorRow(visitor, place) {
  const entries = visitor.max_entries == null ? `${visitor.entries_used} / ${t("security.anyEntries")}` : `${visitor.entries_used} / ${visitor.max_entries}`;
  return cells({ "data-pass": visitor.pass_id }, place(visitor.building_id), `${when(visitor.valid_from)} – ${when(visitor.valid_until)}`, entries, visitor.has_plate ? t("security.withCar") : "—");
}

// Offline first, the longest silent first; then the rest as the API orders them (building, id).
function offlineFirst(devices) {
  const offline = devices.filter((d) => d.offline_since).sort((a, b) => new Date(a.offline_since) - new Date(b.offline_since));
  return [...offline, ...devices.filter((d) => !d.offline_since)];
}

function fillDoors(devices, place) {
  const select = $("door-form").device_id;
  const chosen = select.value;
  const doors = devices.filter((d) => d.kind === "door" || d.kind === "gate");
  select.replaceChildren(...doors.map((d) => element("option", { value: d.id, text: `${d.name} · ${place(d.building_id)}` })));
  if (doors.some((d) => d.id === chosen)) select.value = chosen;
}

// Opening the screen starts without a door search (none of a previous login's results stay on it),
// its range today so far; a reload (the stream, the poll) leaves the search and the form as they are.
export async function openSecurity() {
  door = null;
  $("door-results").hidden = true;
  $("door-rows").replaceChildren();
  searchFromTodayToNow();
  await reloadSecurity();
}

export async function reloadSecurity() {
  const today = localDay();
  const [alarms, devices, visitors, names, tickets] = await Promise.all([
    allItems("security/alarms?limit=100", 2),
    allItems("security/devices?limit=200"),
    allItems(`security/expected-visitors?day=${today}&limit=200`),
    buildingNames(),
    alarmTickets(),
  ]);
  const place = (id) => names[id] ?? id.slice(0, 8);
  const waiting = alarms.filter((a) => !a.acknowledged_at && !a.cleared_at);
  fillRows("open-alarm-rows", "open-alarms-empty", waiting.map((a) => openAlarmRow(a, place, tickets[a.id])));
  fillRows("answered-alarm-rows", "answered-alarms-empty", alarms.filter((a) => !waiting.includes(a)).map((a) => answeredAlarmRow(a, place, tickets[a.id])));
  fillRows("device-rows", "devices-empty", offlineFirst(devices).map((d) => deviceRow(d, place)));
  const perBuilding = {};
  for (const v of visitors) perBuilding[v.building_id] = (perBuilding[v.building_id] ?? 0) + 1;
  $("visitor-counts").replaceChildren(...Object.entries(perBuilding).flatMap(([id, n]) => [element("dt", { text: place(id) }), element("dd", { text: String(n) })]));
  fillRows("visitor-rows", "visitors-empty", visitors.map((v) => visitorRow(v, place)));
  // Not while someone is choosing a door or a time: a redraw would take their choice.
  if (!$("door-form").contains(document.activeElement)) fillDoors(devices, place);
  $("security").dataset.loaded = String(Date.now());
  poll(() => reloadSecurity().catch(explain), SECURITY_POLL_MS);
}

function eventRow(event) {
  return cells({ "data-event": String(event.id) }, when(event.occurred_at), term(`direction.${event.direction}`), term(`credential.${event.credential_kind}`), shortId(event.pass_id));
}

// One page more of the door's events (the first when `fresh`), following next_cursor as dom.js does.
async function searchDoor(fresh) {
  const joiner = door.cursor ? `&cursor=${encodeURIComponent(door.cursor)}` : "";
  const page = await api("GET", `${door.path}${joiner}`);
  const rows = page.items.map(eventRow);
  if (fresh) fillRows("door-rows", "door-empty", rows);
  else $("door-rows").append(...rows);
  door.cursor = page.next_cursor;
  $("door-more").hidden = !door.cursor;
  $("door-results").hidden = false;
}

// The search form's range before any search: today so far, in Beijing time.
function searchFromTodayToNow() {
  const form = $("door-form");
  const now = COMMUNITY_CLOCK.format(new Date()).replace(" ", "T");
  form.since.value = `${now.slice(0, 10)}T00:00`;
  form.until.value = now;
}

export function wireSecurity() {
  const form = $("door-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // The end of the chosen minute: an event in it is in the range.
    const until = new Date(new Date(inCommunity(form.until.value)).getTime() + 60000).toISOString();
    const query = new URLSearchParams({ device_id: form.device_id.value, since: inCommunity(form.since.value), until, limit: String(EVENTS_PAGE) });
    door = { path: `security/access-events?${query}`, cursor: null };
    searchDoor(true).then(() => say(""), explain);
  });
  $("door-more").addEventListener("click", () => searchDoor(false).catch(explain));
}
