// Parking (停车), for staff: occupancy now, cars still parked past their booking (overstays) and exits
// charged for one, and the gate's misreads (entries refused, exits that matched nothing) with a form
// to correct the plate, which matches the event again at its original time.
import { api } from "./api.js";
import { $, allItems, cells, element, explain, field, fillRows, say, shortId, when } from "./dom.js";
import { t, term } from "./i18n.js";
import { poll } from "./live.js";

const PARKING_POLL_MS = 10000;
const yuan = (fen) => (fen / 100).toFixed(2);

async function correct(event, plate) {
  try {
    await api("POST", `parking/gate-events/${event.id}/correction`, { plate });
    say("");
    $("parking").dataset.corrected = event.id;
    document.activeElement?.blur(); // the row's form held the focus, which keeps the rows from being redrawn
    await openParking();
  } catch (error) {
    explain(error, { action: true });
  }
}

function misreadRow(event) {
  const form = element("form", { class: "inline" });
  const plate = element("input", { name: "plate", required: "", maxlength: "10", "aria-label": t("parking.rightPlate") });
  form.append(plate, element("button", { type: "submit", text: t("parking.correct") }));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    correct(event, plate.value.trim());
  });
  return cells({ "data-event": event.id }, when(event.at), t(`parking.${event.direction}`), event.plate, term(event.reason), shortId(event.device_id), form);
}

export async function openParking() {
  const [occupancy, active, refused, recent] = await Promise.all([
    api("GET", "parking/occupancy"),
    allItems("parking/bookings?role=all&status=active&limit=200"),
    allItems("parking/gate-events?decision=refused&limit=200", 1),
    allItems("parking/gate-events?limit=200", 1),
  ]);
  $("occupancy-fields").replaceChildren(
    ...field("parking.spots", occupancy.spots),
    ...field("parking.occupiedNow", occupancy.occupied_now),
    ...field("parking.bookedNow", occupancy.booked_now),
  );
  const now = Date.now();
  const overstaying = active.filter((b) => new Date(b.ends_at).getTime() < now);
  const charged = recent.filter((e) => e.reason === "overstay");
  fillRows("overstay-rows", "overstays-empty", [
    ...overstaying.map((b) => cells({ "data-booking": b.id }, b.plate, when(b.ends_at), t("parking.stillParked"), "—")),
    ...charged.map((e) => cells({ "data-event": e.id }, e.plate, when(e.at), t("parking.leftLate"), yuan(e.charged_fen))),
  ]);
  // Misreads: an entry refused for want of a booking, an exit that matched no car inside.
  const unmatched = recent.filter((e) => e.reason === "no-active-booking");
  // Not while someone is typing a plate in a row: a redraw would take their text.
  if (!$("misread-rows").contains(document.activeElement)) fillRows("misread-rows", "misreads-empty", [...refused, ...unmatched].map(misreadRow));
  poll(() => openParking().catch(explain), PARKING_POLL_MS);
}
