// A ticket (工单详情): every field, photos, the timeline, and exactly the actions the logged-in role may
// take in its status, read from the property service's own table (GET /property/transitions).
import { api, blobUrl, current } from "./api.js";
import { $, allItems, element, explain, field, say, when } from "./dom.js";
import { t, term } from "./i18n.js";

let table = null; // a promise of {open_statuses, actions: {role: {status: [action]}}}, asked once per login

export function transitions() {
  table ??= api("GET", "property/transitions").catch((error) => {
    table = null;
    throw error;
  });
  return table;
}

export function forgetTransitions() {
  table = null;
}

// The SLA countdown: time left to the deadline the ticket races, or how late it is.
export function countdown(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  const minutes = Math.floor(Math.abs(ms) / 60000);
  const text = minutes >= 60 ? `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m` : `${minutes}m`;
  return ms < 0 ? `${t("overdue")} ${text}` : `${t("left")} ${text}`;
}

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

function actionsFor(table, status) {
  const mine = new Set();
  for (const role of current().roles) for (const action of table.actions[role]?.[status] ?? []) mine.add(action);
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

function input(name, kind) {
  if (Array.isArray(kind)) return element("select", { name }, ...kind.map((v) => element("option", { value: v, text: t(`waiting.${v}`) })));
  const attrs = { name };
  if (kind === "number") Object.assign(attrs, { type: "number", min: "0.01", step: "0.01", required: "" });
  if (kind === "required") attrs.required = "";
  return element("input", attrs);
}

function askFor(ticket, action) {
  const form = $("action-form");
  const inputs = ACTION_FIELDS[action].map(([name, label, kind]) => element("label", {}, element("span", { text: t(label) }), input(name, kind)));
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

export async function openTicket(id) {
  const [ticket, steps, table] = await Promise.all([api("GET", `property/tickets/${id}`), allItems(`property/tickets/${id}/steps`), transitions()]);
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
  const actions = actionsFor(table, ticket.status).map((action) =>
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
