// Live updates: the screens follow the notifications stream (GET /api/notify/stream) and reload what
// is open when something happens to me; while the stream is down (notify unreachable, a proxy that
// buffers), the open screen asks again every few seconds instead, and slowly as a safety net when it is up.
// `?poll=off` in the console's address turns the polling off, to see the stream alone at work.
import { current, stream } from "./api.js";

const POLL_WHILE_LIVE_MS = 15000;
const RECONNECT_MS = 5000;
const polling = new URLSearchParams(location.search).get("poll") !== "off";
let live = false;
let lastLoad = 0;
let following = null;
let poller = null;
let onChange = () => {};

// The page says whether the stream is open and how many events it brought, for a reader (and a test) to see.
function mark(state) {
  document.body.dataset.live = state;
}

// Asks `load` again every `every` ms while the stream is down; replaces the open screen's previous poll.
export function poll(load, every) {
  stopPolling();
  if (!polling) return;
  poller = setInterval(() => {
    if (live && Date.now() - lastLoad < POLL_WHILE_LIVE_MS) return;
    lastLoad = Date.now();
    load();
  }, every);
}

export function stopPolling() {
  clearInterval(poller);
  poller = null;
}

function changed() {
  lastLoad = Date.now();
  document.body.dataset.streamEvents = String(Number(document.body.dataset.streamEvents ?? 0) + 1);
  onChange();
}

// Follows the stream while someone is logged in; `reload` runs on each notification.
export async function follow(reload) {
  onChange = reload;
  if (following) return;
  following = new AbortController();
  const { signal } = following;
  while (current() && !signal.aborted) {
    try {
      await stream("notify/stream", { onOpen: () => ((live = true), mark("open")), onEvent: changed, signal });
    } catch {
      // Not reachable now: polling carries the screens until it is.
    }
    live = false;
    mark("down");
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

export function unfollow() {
  following?.abort();
  following = null;
  live = false;
  mark("off");
}
