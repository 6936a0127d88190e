// Member verification (成员核验), for community workers: the members no worker has verified yet (longest
// waiting first, each a link), and a member's verified birth date (which decides the withdrawal age) and
// relatives, opened from that list or looked up by id; the worker records what they checked in person.
import { api } from "./api.js";
import { $, allItems, cells, element, explain, field, fillRows, hours, say, when } from "./dom.js";
import { t } from "./i18n.js";
import { stopPolling } from "./live.js";

// One page of the oldest: a worker works down the list, and a verified member leaves it.
const AWAITING_SHOWN = 100;

function kindsOf(member) {
  return [member.is_elder && t("member.elder"), member.is_volunteer && t("member.volunteer"), member.priority_elder && t("member.priority")].filter(Boolean).join("、");
}

function awaitingRow(m) {
  const link = element("a", { href: `#/members/${encodeURIComponent(m.member_id)}`, text: m.member_id });
  return cells({ "data-member": m.member_id }, link, kindsOf(m), when(m.enrolled_at));
}

async function showAwaiting() {
  const awaiting = await allItems(`timebank/members/awaiting-verification?limit=${AWAITING_SHOWN}`, 1);
  fillRows("awaiting-member-rows", "awaiting-members-empty", awaiting.map(awaitingRow));
}

export async function openMembers(memberId) {
  stopPolling();
  $("member-lookup").member_id.value = memberId ?? "";
  $("member-detail").hidden = !memberId;
  if (!memberId) return showAwaiting();
  const id = encodeURIComponent(memberId);
  const [member, relatives] = await Promise.all([api("GET", `timebank/members/${id}`), allItems(`timebank/members/${id}/relatives`), showAwaiting()]);
  $("member-detail").dataset.member = member.member_id;
  $("member-fields").replaceChildren(
    ...field("member.id", member.member_id),
    ...field("member.birthDate", member.birth_date),
    ...field("member.verifiedAt", when(member.age_verified_at)),
    ...field("member.kinds", kindsOf(member)),
    ...field("member.balance", `${hours(member.balance.available_minutes)} h`),
  );
  fillRows("relative-rows", "relatives-empty", relatives.map((r) => cells({ "data-relative": r.relative_id }, r.relative_id, r.relation, when(r.verified_at), r.verified_by.slice(0, 8))));
}

async function record(form, path, body) {
  try {
    // Recording what was checked in person twice leaves the same record: safe to repeat after a 503.
    await api("POST", `timebank/members/${encodeURIComponent($("member-detail").dataset.member)}/${path}`, body, { repeatable: true });
    form.reset();
    say("");
    await openMembers($("member-detail").dataset.member);
    $("member-detail").dataset.saved = path;
  } catch (error) {
    explain(error, { action: true });
  }
}

export function wireMembers() {
  $("member-lookup").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/members/${encodeURIComponent(event.target.member_id.value.trim())}`;
  });
  $("verify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    record(f, "verification", { birth_date: f.birth_date.value, priority_elder: f.priority_elder.checked });
  });
  $("relative-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    record(f, "relatives", { relative_id: f.relative_id.value.trim(), relation: f.relation.value.trim() });
  });
}
