// The admin page: sign-in, navigation between views (#/program, #/members, #/members/<id>,
// #/deliveries, #/care), and the wiring of each view.
import { ApiError, api, session, whenUnauthenticated } from "./api.js";
import * as care from "./care.js";
import * as deliveries from "./deliveries.js";
import { announce, byId, clearStatus } from "./dom.js";
import * as members from "./members.js";
import * as program from "./program.js";

const VIEWS = {
  program: { section: "view-program", show: () => program.show() },
  members: { section: "view-members", show: () => members.showList() },
  member: { section: "view-member", show: (id) => members.showMember(id) },
  deliveries: { section: "view-deliveries", show: () => deliveries.show() },
  care: { section: "view-care", show: () => care.show() },
};

function reveal(sectionId) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== sectionId;
  const signedIn = sectionId !== "view-sign-in";
  byId("nav").hidden = !signedIn;
  byId("who").hidden = !signedIn;
  const heading = byId(sectionId).querySelector("h1");
  // Signed out, the key field is all there is to do; otherwise the view's heading, so a screen
  // reader starts reading the new view from its top.
  if (signedIn) heading?.focus();
  else byId("api-key").focus();
  document.title = `${heading?.textContent ?? "Admin"} · Patron admin`;
}

async function route() {
  if (!session.key) {
    reveal("view-sign-in");
    return;
  }
  const [name = "program", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = name === "members" && rest.length ? VIEWS.member : VIEWS[name] ?? VIEWS.program;
  const current = name === "members" && rest.length ? "members" : VIEWS[name] ? name : "program";
  for (const link of byId("nav").querySelectorAll("a")) {
    if (link.getAttribute("href") === `#/${current}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  byId("who-store").textContent = `Store ${session.who?.store_id ?? ""}`;
  reveal(view.section);
  try {
    await view.show(decodeURIComponent(rest.join("/")));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) {
      announce(`Could not load this view: ${error.message}`, "error");
    }
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("api-key");
  const error = byId("api-key-error");
  const key = input.value.trim();
  const fail = (message) => {
    error.textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    announce(message, "error");
  };
  if (!key) return fail("Enter the store's marketer API key.");
  let who;
  try {
    ({ data: who } = await api("/v1/me", { key }));
  } catch (problem) {
    return fail(
      problem.status === 401 ? "Patron does not know this key, or it was revoked." : `Could not sign in: ${problem.message}`,
    );
  }
  if (who.scope !== "marketer") {
    return fail(`This is a ${who.scope} key; the admin page needs the store's marketer key.`);
  }
  error.textContent = "";
  input.removeAttribute("aria-invalid");
  input.value = "";
  session.start(key, who);
  clearStatus();
  if (location.hash.startsWith("#/")) await route();
  else location.hash = "#/program";
}

function signOut(message) {
  session.end();
  program.forget();
  // Without a hashchange, which would clear the message below.
  history.replaceState(null, "", location.pathname + location.search);
  route();
  if (message) announce(message, "error");
  else announce("Signed out; the key is forgotten.");
}

program.wire();
members.wire();
deliveries.wire();
care.wire();
byId("sign-in-form").addEventListener("submit", signIn);
byId("sign-out").addEventListener("click", () => signOut());
whenUnauthenticated(() => signOut("The key stopped working (revoked or rotated out). Sign in again."));
window.addEventListener("hashchange", () => {
  clearStatus();
  route();
});
route();
