// The staff console: screens over the public API. Each screen asks the API and shows what it answers;
// a refusal (403) is shown as such, never hidden, so a role sees exactly what the platform lets it see.
// This module routes between the screens and logs in; each screen is its own module.
import { current, loginWithCode, loginWithPassword, logout, sendCode, whenExpired } from "./api.js";
import { openCare } from "./care.js";
import { openDecisions, wireDecisions } from "./decisions.js";
import { $, explain, hasRole, say } from "./dom.js";
import { openHome, refreshHome } from "./home.js";
import { switchLanguage, t, translatePage } from "./i18n.js";
import { follow, stopPolling, unfollow } from "./live.js";
import { openMembers, wireMembers } from "./members.js";
import { openParking } from "./parking.js";
import { openPoints, reloadPoints, wirePoints } from "./points.js";
import { openQueue, reloadQueue, wireQueue } from "./queue.js";
import { openRegister } from "./register.js";
import { openSecurity, reloadSecurity, wireSecurity } from "./security.js";
import { forgetTransitions, openTicket } from "./tickets.js";

// Each screen: how it opens (with the rest of the address), how it reloads when the stream says
// something changed, and the roles its link is shown to (the API still decides what it answers).
const STAFF = ["steward", "property_admin", "community_worker"];
const SCREENS = {
  home: { open: openHome, reload: refreshHome, roles: null },
  queue: { open: openQueue, reload: reloadQueue, roles: ["steward", "property_admin"] },
  ticket: { open: openTicket, reload: null, roles: [] },
  points: { open: openPoints, reload: reloadPoints, roles: ["community_worker"] },
  members: { open: openMembers, reload: null, roles: ["community_worker"] },
  care: { open: openCare, reload: () => openCare().catch(explain), roles: ["steward", "community_worker"] },
  parking: { open: openParking, reload: () => openParking().catch(explain), roles: STAFF },
  register: { open: openRegister, reload: null, roles: ["community_worker"] },
  decisions: { open: openDecisions, reload: () => openDecisions().catch(explain), roles: STAFF },
  security: { open: openSecurity, reload: () => reloadSecurity().catch(explain), roles: [...STAFF, "security_guard"] },
};

function show(screen) {
  for (const name of ["login", ...Object.keys(SCREENS)]) $(name).hidden = name !== screen;
}

function openScreen() {
  return Object.keys(SCREENS).find((name) => !$(name).hidden);
}

function reloadOpenScreen() {
  SCREENS[openScreen()]?.reload?.();
}

function showNav() {
  $("nav").hidden = false;
  for (const link of $("nav").querySelectorAll("a")) {
    const roles = SCREENS[link.getAttribute("href").slice(2)].roles;
    link.hidden = roles !== null && !hasRole(...roles);
  }
}

async function route() {
  stopPolling();
  if (!current()) {
    unfollow();
    return show("login");
  }
  follow(reloadOpenScreen);
  showNav();
  $("logout").hidden = false;
  $("who").textContent = current().roles.join(", ");
  const [, name, rest] = location.hash.split("/");
  const screen = name in SCREENS ? name : "home";
  say("");
  show(screen);
  try {
    await SCREENS[screen].open(rest ? decodeURIComponent(rest) : undefined);
  } catch (error) {
    explain(error);
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
    forgetTransitions();
    if (!location.hash || location.hash === "#/") location.hash = "#/home";
    else await route();
  } catch (error) {
    explain(error);
  }
}

function wireLogin() {
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
  $("logout").addEventListener("click", () => logout().then(() => (location.hash = "#/")));
}

function start() {
  translatePage();
  $("lang").addEventListener("click", () => {
    switchLanguage();
    route();
  });
  wireLogin();
  wireQueue();
  wirePoints();
  wireMembers();
  wireDecisions();
  wireSecurity();
  whenExpired(() => {
    $("nav").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
