// The staff console: screens over the public API. Each screen asks the API and shows what it answers;
// a refusal (403) is shown as such, never hidden, so a role sees exactly what the platform lets it see.
import { ApiError, api, blobUrl, current, download, loginWithCode, loginWithPassword, logout, sendCode, stream, whenExpired } from "./api.js";
import { lang, switchLanguage, t, term, translatePage } from "./i18n.js";

// Live updates: the screens follow the notifications stream (GET /api/notify/stream) and reload what
// is open when something happens to me; while the stream is down (notify unreachable, a proxy that
// buffers), the open screen asks again every few seconds instead, and slowly as a safety net when it is up.
const POLL_MS = 2000;
const POLL_WHILE_LIVE_MS = 15000;
const RECONNECT_MS = 5000;
let live = false;
let lastLoad = 0;
let following = null;
const SCREENS = ["login", "home", "queue", "ticket", "points"];
const $ = (id) => document.getElementById(id);
// The property service's ticket rules (GET /property/transitions): open statuses and each role's actions by status.
let transitions = null;
let poller = null;
let queue = []; // [{ticket, scope}]

function show(screen) {
  for (const name of SCREENS) $(name).hidden = name !== screen;
}

function say(message) {
  $("alert").textContent = message;
  $("alert").hidden = !message;
}

function explain(error, { action = false } = {}) {
  if (!(error instanceof ApiError)) return say(t("offline"));
  const title = error.problem.detail || error.problem.title || "";
  // An action refused (e.g. approving one's own award) is a rule of that action, not of the screen.
  if (error.status === 403 && action) return say(t("refused", { status: 403, title }));
  if (error.status === 403) return say(`${t("refused", { status: 403, title })} ${t("refusedRole", { roles: current()?.roles?.join(", ") ?? "" })}`);
  if (error.status === 401) return say(t("expired"));
  say(t("failed", { status: error.status, title }));
}

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function when(iso) {
  return new Date(iso).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

// The SLA countdown: time left to the deadline the ticket races, or how late it is.
function countdown(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  const minutes = Math.floor(Math.abs(ms) / 60000);
  const text = minutes >= 60 ? `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m` : `${minutes}m`;
  return ms < 0 ? `${t("overdue")} ${text}` : `${t("left")} ${text}`;
}

// --- routing -------------------------------------------------------------------------------------

// Polling that stands back while the stream is live.
function poll(load, every) {
  return setInterval(() => {
    if (live && Date.now() - lastLoad < POLL_WHILE_LIVE_MS) return;
    lastLoad = Date.now();
    load();
  }, every);
}

function reloadOpenScreen() {
  lastLoad = Date.now();
  if (!$("queue").hidden) loadQueue().then(renderQueue).catch(explain);
  else if (!$("points").hidden) openPointsQuietly();
  else if (!$("home").hidden) refreshHome().catch(explain);
}

async function follow() {
  if (following) return;
  following = new AbortController();
  const { signal } = following;
  while (current() && !signal.aborted) {
    try {
      await stream("notify/stream", { onOpen: () => (live = true), onEvent: reloadOpenScreen, signal });
    } catch {
      // Not reachable now: polling carries the screens until it is.
    }
    live = false;
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function unfollow() {
  following?.abort();
  following = null;
  live = false;
}

async function route() {
  clearInterval(poller);
  poller = null;
  if (!current()) {
    unfollow();
    return show("login");
  }
  follow();
  $("nav").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = current().roles.join(", ");
  const [, screen, id] = location.hash.split("/");
  say("");
  try {
    transitions ??= await api("GET", "property/transitions");
    if (screen === "queue") await openQueue();
    else if (screen === "ticket" && id) await openTicket(id);
    else if (screen === "points") await openPoints();
    else await openHome();
  } catch (error) {
    explain(error);
  }
}

// --- home ----------------------------------------------------------------------------------------

async function allTickets(query) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 5; page++) {
    const body = await api("GET", `property/tickets?limit=200${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return items;
}

function figure(label, value, href) {
  return element("li", {}, element("a", { href }, element("strong", { text: String(value) }), label));
}

const isWorker = () => current().roles.includes("community_worker") && !current().roles.some((r) => r === "steward" || r === "property_admin");

async function openHome() {
  show("home");
  if (isWorker()) return openWorkerHome();
  // The queue is the staff's screen: a role the property service does not let near it is refused here.
  const [mine, community] = await Promise.all([
    api("GET", "property/queue?scope=mine&limit=200"),
    api("GET", "property/queue?scope=community&limit=200"),
  ]);
  const [open, overdue, week] = await Promise.all([allTickets(""), allTickets("&breached=true"), weekFigures()]);
  const byStatus = {};
  for (const ticket of open) byStatus[ticket.status] = (byStatus[ticket.status] ?? 0) + 1;
  const openStatuses = transitions.open_statuses;
  const items = [
    figure(t("fig.mine"), mine.items.length, "#/queue"),
    figure(t("fig.community"), community.items.length, "#/queue"),
    figure(t("fig.overdue"), overdue.filter((x) => openStatuses.includes(x.status)).length, "#/queue"),
    figure(t("fig.weekOnTime"), percent(week.on_time, week.completed), "#/queue"),
    ...openStatuses.filter((s) => byStatus[s]).map((s) => figure(`${t("fig.open")} · ${term(s)}`, byStatus[s], `#/queue/status=${s}`)),
  ];
  if (current().roles.includes("steward")) {
    const month = localDay().slice(0, 7);
    const mine = await api("GET", `property/staff/${current().subject}/figures?month=${month}`);
    const rate = mine.on_time_rate == null ? "—" : percent(mine.on_time, mine.completed);
    items.push(figure(t("fig.onTime"), rate, "#/queue"), figure(t("fig.rating"), mine.average_rating ?? "—", "#/queue"));
  }
  $("figures").replaceChildren(...items);
  poller = poll(() => refreshHome().catch(explain), POLL_MS * 5);
}

function percent(part, whole) {
  return whole ? `${Math.round((part / whole) * 100)}%` : "—";
}

// Days and months are the community's (Asia/Shanghai), as the service counts them, whatever this machine's zone.
const COMMUNITY_DAY = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" });

function localDay(date = new Date()) {
  return COMMUNITY_DAY.format(date); // YYYY-MM-DD
}

function daysBefore(day, days) {
  const date = new Date(`${day}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() - days);
  return date.toISOString().slice(0, 10);
}

// This week (Monday to today) in the service's SLA statistics, summed over the categories.
async function weekFigures() {
  const today = localDay();
  const monday = daysBefore(today, (new Date(`${today}T12:00:00Z`).getUTCDay() + 6) % 7);
  const stats = await api("GET", `property/reports/sla?by=category&since=${monday}&until=${today}`);
  return stats.groups.reduce((sum, g) => ({ on_time: sum.on_time + g.on_time, completed: sum.completed + g.completed }), { on_time: 0, completed: 0 });
}

// A community worker's home: the community's SLA this week, and the points budget and awards awaiting a second worker.
async function openWorkerHome() {
  // Property lists tickets to its own staff and residents only; a worker sees the community's SLA figures.
  const [week, budget, pending] = await Promise.all([
    weekFigures(),
    api("GET", "governance/budget"),
    api("GET", "governance/awards?status=pending&limit=200"),
  ]);
  $("figures").replaceChildren(
    figure(t("fig.weekOnTime"), percent(week.on_time, week.completed), "#/home"),
    figure(t("fig.budget"), budget.remaining, "#/points"),
    figure(t("fig.pendingAwards"), pending.items.length, "#/points"),
  );
  poller = poll(() => refreshHome().catch(explain), POLL_MS * 5);
}

async function refreshHome() {
  if (!$("home").hidden && !document.querySelector("#figures a:focus")) await openHome();
}

// --- queue ---------------------------------------------------------------------------------------

async function loadQueue() {
  const scopes = ["mine", "community"];
  // The unit search is the server's (a ticket carries its household, not its unit); the other filters narrow what is loaded.
  const unit = $("filters").unit.value.trim();
  const search = unit ? `&unit=${encodeURIComponent(unit)}` : "";
  const pages = await Promise.all(scopes.map((scope) => api("GET", `property/queue?scope=${scope}&limit=200${search}`)));
  queue = pages.flatMap((page, i) => page.items.map((ticket) => ({ ticket, scope: scopes[i] })));
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
    .map(({ ticket, scope }) => {
      const late = new Date(ticket.due_at).getTime() < now;
      const soon = !late && new Date(ticket.due_at).getTime() - now < 3600000;
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
    });
  $("queue-rows").replaceChildren(...rows);
  $("queue-empty").hidden = rows.length > 0;
}

async function openQueue() {
  show("queue");
  const preset = location.hash.split("/")[2];
  if (preset?.startsWith("status=")) fillSelect($("filters").status, [preset.slice(7)], preset.slice(7));
  await loadQueue();
  renderQueue();
  poller = poll(() => loadQueue().then(renderQueue).catch(explain), POLL_MS);
}

// --- ticket --------------------------------------------------------------------------------------

// The body each action takes (the property API's request models); an action not listed takes none.
const ACTION_FIELDS = {
  pause: [["waiting_on", "form.waitingOn", ["parts", "resident"]], ["reason", "form.reason"]],
  quote: [["amount_yuan", "form.amount", "number"], ["note", "form.note"]],
  follow_up: [["note", "form.note", "required"]],
  hand_over: [["to_staff_id", "form.toStaff", "required"], ["reason", "form.reason", "required"]],
  reassign: [["to_staff_id", "form.toStaff", "required"], ["reason", "form.reason", "required"]],
  close: [["reason", "form.reason"]],
  cancel: [["reason", "form.reason"]],
};

function actionsFor(status) {
  const mine = new Set();
  for (const role of current().roles) for (const action of transitions.actions[role]?.[status] ?? []) mine.add(action);
  return [...mine];
}

async function act(ticket, action, body) {
  try {
    await api("POST", `property/tickets/${ticket.id}/${action.replaceAll("_", "-")}`, body);
    await openTicket(ticket.id);
    say("");
    $("ticket-actions").dataset.done = action;
  } catch (error) {
    explain(error);
  }
}

function askFor(ticket, action) {
  const form = $("action-form");
  const inputs = ACTION_FIELDS[action].map(([name, label, kind]) => {
    const input = Array.isArray(kind)
      ? element("select", { name }, ...kind.map((v) => element("option", { value: v, text: t(`waiting.${v}`) })))
      : element("input", { name, ...(kind === "number" ? { type: "number", min: "0.01", step: "0.01", required: "" } : {}), ...(kind === "required" ? { required: "" } : {}) });
    return element("label", {}, element("span", { text: t(label) }), input);
  });
  const cancel = element("button", { type: "button", text: t("cancelForm"), onclick: () => (form.hidden = true) });
  form.replaceChildren(element("h4", { text: term(action) }), ...inputs, element("button", { type: "submit", text: t("submit") }), cancel);
  form.onsubmit = (event) => {
    event.preventDefault();
    const values = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
    if (values.amount_yuan) {
      values.amount_fen = Math.round(Number(values.amount_yuan) * 100);
      delete values.amount_yuan;
    }
    form.hidden = true;
    act(ticket, action, values);
  };
  form.hidden = false;
  form.querySelector("input, select")?.focus();
}

function field(key, value) {
  return [element("dt", { text: t(key) }), element("dd", { text: value ?? "—" })];
}

async function openTicket(id) {
  show("ticket");
  const [ticket, steps] = await Promise.all([api("GET", `property/tickets/${id}`), api("GET", `property/tickets/${id}/steps`)]);
  $("ticket-fields").replaceChildren(
    ...field("field.id", ticket.id),
    ...field("field.status", term(ticket.status)),
    ...field("field.category", term(ticket.category)),
    ...field("field.priority", term(ticket.priority)),
    ...field("field.description", ticket.description),
    ...field("field.building", ticket.building_id),
    ...field("field.created", when(ticket.created_at)),
    ...field("field.due", `${when(ticket.due_at)} (${countdown(ticket.due_at)})`),
    ...field("field.assignee", ticket.assignee_id),
    ...field("field.quote", ticket.quote_fen == null ? null : (ticket.quote_fen / 100).toFixed(2)),
    ...field("field.followUp", ticket.follow_up_note),
    ...field("field.rating", ticket.rating_overall),
  );
  $("ticket").dataset.status = ticket.status;
  const actions = actionsFor(ticket.status).map((action) =>
    element("button", { type: "button", "data-action": action, text: term(action), onclick: () => (ACTION_FIELDS[action] ? askFor(ticket, action) : act(ticket, action)) }),
  );
  $("ticket-actions").replaceChildren(...(actions.length ? actions : [element("p", { text: t("ticket.noActions") })]));
  $("action-form").hidden = true;
  $("ticket-steps").replaceChildren(
    ...steps.map((s) => element("li", { text: `${when(s.at)} · ${term(s.role)} · ${term(s.action)} · ${term(s.from_status) || "—"} → ${term(s.to_status)}${s.note ? ` · ${s.note}` : ""}` })),
  );
  const photos = await Promise.all(ticket.photo_ids.map((photo) => blobUrl(`property/photos/${photo}`).catch(() => null)));
  $("ticket-photos").replaceChildren(...photos.filter(Boolean).map((src, i) => element("img", { src, alt: `${t("ticket.title")} ${i + 1}` })));
}

// --- points (积分): the budget, awards and deductions, a second worker's approval ----------------------

async function openPoints() {
  show("points");
  const [budget, pending] = await Promise.all([api("GET", "governance/budget"), api("GET", "governance/awards?status=pending&limit=200")]);
  $("budget").replaceChildren(
    ...field("budget.funded", budget.funded),
    ...field("budget.granted", budget.granted),
    ...field("budget.clawedBack", budget.clawed_back),
    ...field("budget.remaining", budget.remaining),
  );
  const me = current().subject;
  const rows = pending.items.map((award) =>
    element(
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
    ),
  );
  $("award-rows").replaceChildren(...rows);
  $("awards-empty").hidden = rows.length > 0;
  poller = poll(() => (document.activeElement?.closest("#award-form") ? null : openPointsQuietly()), POLL_MS * 2);
}

async function openPointsQuietly() {
  clearInterval(poller);
  await openPoints().catch(explain);
}

// The API decides: the worker who made the award is refused (403), and the console says so.
async function decide(award, how) {
  try {
    const decided = await api("POST", `governance/awards/${award.id}/${how}`);
    say("");
    $("points").dataset.decided = `${decided.id}:${decided.status}`;
    await openPointsQuietly();
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
    await openPointsQuietly();
  } catch (error) {
    explain(error, { action: true });
  }
}

// --- login ---------------------------------------------------------------------------------------

function chooseLogin(otp) {
  $("form-password").hidden = otp;
  $("form-otp").hidden = !otp;
  $("tab-password").setAttribute("aria-pressed", String(!otp));
  $("tab-otp").setAttribute("aria-pressed", String(otp));
}

async function loggedIn(promise) {
  try {
    await promise;
    if (!location.hash || location.hash === "#/") location.hash = "#/home";
    else await route();
  } catch (error) {
    explain(error);
  }
}

function start() {
  translatePage();
  $("lang").addEventListener("click", () => {
    switchLanguage();
    route();
  });
  $("tab-password").addEventListener("click", () => chooseLogin(false));
  $("tab-otp").addEventListener("click", () => chooseLogin(true));
  $("form-password").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    loggedIn(loginWithPassword(f.community.value, f.username.value, f.password.value));
  });
  $("send-code").addEventListener("click", () => {
    const f = $("form-otp");
    sendCode(f.community.value, f.phone.value).then(() => say(t("login.codeSent")), explain);
  });
  $("form-otp").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    loggedIn(loginWithCode(f.community.value, f.phone.value, f.code.value));
  });
  $("filters").addEventListener("change", (event) => (event.target.name === "unit" ? loadQueue().then(renderQueue).catch(explain) : renderQueue()));
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const [id, what] of [["export-tickets", "tickets"], ["export-sla", "sla"]]) $(id).addEventListener("click", () => exportCsv(what).catch(explain));
  $("award-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createAward(event.target);
  });
  $("logout").addEventListener("click", () => logout().then(() => (location.hash = "#/")));
  whenExpired(() => {
    $("nav").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    route();
  });
  window.addEventListener("hashchange", route);
  // Countdowns move every second without asking the server.
  setInterval(() => {
    for (const cell of document.querySelectorAll("td[data-due]")) cell.textContent = countdown(cell.dataset.due);
  }, 1000);
  route();
}

// This month's tickets, or the stewards' SLA figures this month, as the service's CSV (UTF-8 with a BOM).
async function exportCsv(what) {
  const until = localDay();
  const since = `${until.slice(0, 8)}01`;
  const path = what === "tickets" ? "property/reports/tickets.csv" : "property/reports/sla.csv";
  await download(`${path}?since=${since}&until=${until}${what === "sla" ? "&by=steward" : ""}`, `${what}-${since}-${until}.csv`);
}

start();
