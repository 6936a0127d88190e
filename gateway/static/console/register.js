// The city data-sharing register (数据共享登记), for community workers: every city consumer, the feeds
// it was granted and when each grant or the consumer itself was revoked, and every pull it made. Read
// only: a grant or revocation is made through the API by the worker who signs for it.
import { allItems, cells, element, fillRows, shortId, when } from "./dom.js";
import { t } from "./i18n.js";
import { stopPolling } from "./live.js";

function grantList(consumer) {
  return element(
    "ul",
    { class: "grants" },
    ...consumer.grants.map((g) =>
      element("li", { "data-scene": g.scene, text: g.revoked_at ? `${g.scene} · ${t("register.revokedAt")} ${when(g.revoked_at)}` : `${g.scene} · ${t("register.grantedAt")} ${when(g.granted_at)}` }),
    ),
  );
}

export async function openRegister() {
  stopPolling();
  const [consumers, pulls] = await Promise.all([allItems("citysync/consumers?limit=200"), allItems("citysync/pulls?limit=200", 1)]);
  fillRows(
    "consumer-rows",
    "consumers-empty",
    consumers.map((c) => cells({ "data-consumer": c.id, "data-status": c.status }, c.name, t(`register.${c.status}`), when(c.registered_at), c.revoked_at ? when(c.revoked_at) : "—", grantList(c))),
  );
  fillRows("pull-rows", "pulls-empty", pulls.map((p) => cells({ "data-pull": String(p.id) }, when(p.pulled_at), shortId(p.consumer_id), p.scene, `${p.after_seq} → ${p.last_seq}`, p.record_count)));
}
