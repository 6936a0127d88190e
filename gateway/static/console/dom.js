// What every screen shares: finding and building nodes, saying what the API answered, dates in the
// community's time, and reading a list in either of the platform's two shapes.
import { ApiError, api, current } from "./api.js";
import { lang, t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

export function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function say(message) {
  $("alert").textContent = message;
  $("alert").hidden = !message;
}

export function explain(error, { action = false } = {}) {
  if (!(error instanceof ApiError)) return say(t("offline"));
  const title = error.problem.detail || error.problem.title || "";
  // An action refused (e.g. approving one's own award) is a rule of that action, not of the screen.
  if (error.status === 403 && action) return say(t("refused", { status: 403, title }));
  if (error.status === 403) return say(`${t("refused", { status: 403, title })} ${t("refusedRole", { roles: current()?.roles?.join(", ") ?? "" })}`);
  if (error.status === 401) return say(t("expired"));
  say(t("failed", { status: error.status, title }));
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "—";
}

export function field(key, value) {
  return [element("dt", { text: t(key) }), element("dd", { text: value ?? "—" })];
}

export function percent(part, whole) {
  return whole ? `${Math.round((part / whole) * 100)}%` : "—";
}

export function hours(minutes) {
  return (minutes / 60).toFixed(1).replace(/\.0$/, "");
}

// A table body's rows, or the screen's "nothing here" line when there are none.
export function fillRows(bodyId, emptyId, rows) {
  $(bodyId).replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
}

export function cells(attrs, ...values) {
  return element("tr", attrs, ...values.map((v) => (v instanceof Node ? element("td", {}, v) : element("td", { text: v == null ? "—" : String(v) }))));
}

// Days and months are the community's (Asia/Shanghai), as the services count them, whatever this machine's zone.
const COMMUNITY_DAY = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" });

export function localDay(date = new Date()) {
  return COMMUNITY_DAY.format(date); // YYYY-MM-DD
}

export function daysBefore(day, days) {
  const date = new Date(`${day}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() - days);
  return date.toISOString().slice(0, 10);
}

// A list answered as a bare array or as a cursor page ({items, next_cursor}): the services are
// moving from the first to the second.
function itemsOf(body) {
  return Array.isArray(body) ? body : body.items;
}

// Every item of a list, following next_cursor up to `pages` pages (a screen shows at most that many).
export async function allItems(path, pages = 5) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < pages; page++) {
    const joiner = path.includes("?") ? "&" : "?";
    const body = await api("GET", cursor ? `${path}${joiner}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...itemsOf(body));
    cursor = Array.isArray(body) ? null : body.next_cursor;
    if (!cursor) break;
  }
  return items;
}

export const hasRole = (...roles) => current().roles.some((role) => roles.includes(role));

// A short id for a table cell (the full one stays in the row's data attribute and the title).
export function shortId(id) {
  return id ? element("span", { title: id, text: id.slice(0, 8) }) : "—";
}
