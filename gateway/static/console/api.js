// The console's one door to the platform: the public API through the gateway, like any other client.
// Tokens live in memory only (a reload logs out); the access token is refreshed before it expires.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let session = null; // {access, refresh, roles, subject, community, timer}
let onExpired = () => {};

export function whenExpired(callback) {
  onExpired = callback;
}

export function current() {
  return session;
}

async function post(path, body, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept-Language": acceptLanguage(), ...headers },
    body: JSON.stringify(body ?? {}),
  });
  return answer(response);
}

function acceptLanguage() {
  return document.documentElement.lang === "en" ? "en" : "zh-CN";
}

async function answer(response) {
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, body || {});
  return body;
}

function keep(tokens) {
  if (session?.timer) clearTimeout(session.timer);
  session = {
    access: tokens.access_token,
    refresh: tokens.refresh_token ?? null,
    roles: tokens.roles,
    subject: tokens.subject,
    community: tokens.community,
    timer: null,
  };
  if (session.refresh) {
    // A minute before expiry (or halfway, for short-lived tokens).
    const lead = Math.max(tokens.expires_in - 60, tokens.expires_in / 2);
    session.timer = setTimeout(() => refresh().catch(() => expire()), lead * 1000);
  }
  return session;
}

function expire() {
  if (session?.timer) clearTimeout(session.timer);
  session = null;
  lastEventId = null; // the next person's stream starts from their own notifications
  onExpired();
}

export async function refresh() {
  if (!session?.refresh) throw new ApiError(401, {});
  return keep(await post("/auth/token", { grant_type: "refresh_token", refresh_token: session.refresh }));
}

export async function loginWithPassword(community, username, password) {
  return keep(await post("/auth/token", { grant_type: "password", community, username, password }));
}

export async function sendCode(community, phone) {
  await post("/auth/otp", { community, phone });
}

export async function loginWithCode(community, phone, code) {
  return keep(await post("/auth/token", { grant_type: "otp", community, phone, code }));
}

export async function logout() {
  if (!session) return;
  const { access, refresh: refreshToken } = session;
  expire();
  await post("/auth/logout", { refresh_token: refreshToken }, { Authorization: `Bearer ${access}` }).catch(() => {});
}

// A call to a service (`/api/<service>/...`); one retry after a refresh when the token is refused.
// A 503 (every database connection busy, the database briefly away, the service out of the
// gateway's reach: the request did nothing) is asked once more after its Retry-After, for reads and
// for writes the caller marks as repeatable (`{ repeatable: true }`: the same body twice leaves the
// same state).
export async function api(method, path, body, { repeatable = method === "GET", retried = false, waited = false } = {}) {
  if (!session) throw new ApiError(401, {});
  const headers = { Authorization: `Bearer ${session.access}`, "Accept-Language": acceptLanguage() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 && !retried && session.refresh) {
    await refresh();
    return api(method, path, body, { repeatable, retried: true, waited });
  }
  if (response.status === 401) expire();
  // Without Retry-After (the gateway could not reach the service at all) the console waits a second.
  const wait = Number(response.headers.get("Retry-After") ?? 1);
  if (response.status === 503 && repeatable && !waited && wait > 0 && wait <= 5) {
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return api(method, path, body, { repeatable, retried, waited: true });
  }
  return answer(response);
}

// The bytes of a photo behind the bearer token, as an object URL an <img> can show.
export async function blobUrl(path) {
  const response = await fetch(`/api/${path}`, { headers: { Authorization: `Bearer ${session.access}` } });
  if (!response.ok) throw new ApiError(response.status, {});
  return URL.createObjectURL(await response.blob());
}

// A file behind the bearer token (a CSV export), saved through a temporary link.
export async function download(path, filename) {
  const response = await fetch(`/api/${path}`, { headers: { Authorization: `Bearer ${session.access}`, "Accept-Language": acceptLanguage() } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// Server-Sent Events read with fetch (EventSource cannot send the bearer token). `onOpen` runs once
// the stream answers 200, `onEvent` for each event; resolves when the stream ends (the token expired,
// the server closed it), throws when it cannot be opened. Resumes after the last id it saw.
let lastEventId = null;

export async function stream(path, { onOpen, onEvent, signal }) {
  if (!session) throw new ApiError(401, {});
  const headers = { Authorization: `Bearer ${session.access}`, Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await fetch(`/api/${path}`, { headers, signal });
  if (!response.ok || !response.body) throw new ApiError(response.status, {});
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = { type: "message", data: null };
      for (const line of buffer.slice(0, end).split("\n")) {
        const [name, ...rest] = line.split(":");
        const text = rest.join(":").replace(/^ /, "");
        if (name === "event") event.type = text;
        else if (name === "data") event.data = event.data === null ? text : `${event.data}\n${text}`;
        else if (name === "id") lastEventId = text;
      }
      buffer = buffer.slice(end + 2);
      if (event.data !== null) onEvent(event); // a comment line (the heartbeat) carries no data
    }
  }
}
