// Boot, sign-in gate and the hash router. Views live in views/ and render into <main>.
import { ApiError, auth, get } from "./api.js";
import { errorPanel, h, loading, mount } from "./dom.js";
import { renderSignIn } from "./views/signin.js";

const view = document.getElementById("view");
const topbar = document.getElementById("topbar");
const session = { user: null, signInMessage: null };
let navigation = 0;

const ROUTES = [
  [/^\/?$/, "flows", () => import("./views/overview.js")],
  [/^\/flows\/?$/, "flows", () => import("./views/overview.js")], // the old flows list, merged into the overview
  [/^\/cost$/, "cost", () => import("./views/cost.js")],
  [/^\/search$/, "search", () => import("./views/search.js")],
  [/^\/flows\/([^/]+)\/?$/, "flows", () => import("./views/history.js")],
  [/^\/flows\/([^/]+)\/runs\/([^/]+)$/, "flows", () => import("./views/detail.js")],
  [/^\/flows\/([^/]+)\/analytics$/, "flows", () => import("./views/analytics.js")],
  [/^\/flows\/([^/]+)\/alerts$/, "flows", () => import("./views/alerts.js")],
  [/^\/flows\/([^/]+)\/retention$/, "flows", () => import("./views/retention.js")],
  [/^\/compare\/([^/]+)\/([^/]+)$/, "flows", () => import("./views/compare.js")],
  [/^\/jobs$/, "jobs", () => import("./views/jobs.js")],
  [/^\/sql$/, "sql", () => import("./views/sql.js")],
];

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, params: new URLSearchParams(qs || "") };
}

function signOut(message) {
  auth.clear();
  session.user = null;
  session.signInMessage = message || null;
  if (location.hash && location.hash !== "#/") location.hash = "#/";
  else route();
}

auth.onUnauthorized((message) => {
  if (session.signingIn) return; // the sign-in form says it itself
  session.user = null;
  session.signInMessage = `Signed out: ${message}. Sign in again.`;
  route();
});

document.getElementById("sign-out").addEventListener("click", () => signOut("You are signed out."));

async function ensureUser() {
  if (session.user) return session.user;
  session.user = await get("/api/v1/users/me");
  document.getElementById("who").textContent = `${session.user.id} (${session.user.role})`;
  const admin = session.user.role === "admin";
  document.getElementById("nav-sql").hidden = !admin;
  document.getElementById("nav-jobs").hidden = !admin; // the scheduler is for admins only
  return session.user;
}

async function route() {
  const seq = ++navigation;
  if (!auth.token) {
    topbar.hidden = true;
    renderSignIn(view, session.signInMessage, async () => {
      session.signingIn = true;
      try {
        await ensureUser();
      } finally {
        session.signingIn = false;
      }
      session.signInMessage = null;
      route();
    });
    return;
  }
  mount(view, loading());
  const { path, params } = parseHash();
  const found = ROUTES.find(([re]) => re.test(path));
  const modulePromise = found ? found[2]() : null; // load the view while we learn who is signed in
  try {
    await ensureUser();
  } catch (err) {
    if (err.status === 401) return; // onUnauthorized already showed the sign-in screen
    mount(view, errorPanel(err, route));
    return;
  }
  topbar.hidden = false;
  if (!found) {
    mount(view, notFound(path));
    return;
  }
  const [re, section] = found;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let args;
  try {
    args = path.match(re).slice(1).map(decodeURIComponent);
  } catch {
    mount(view, notFound(path)); // `%ZZ` is no address: it hung on "Loading…"
    return;
  }
  const ctx = { user: session.user, params, stale: () => seq !== navigation, navigate };
  try {
    const module = await modulePromise.catch(unreachable);
    if (seq !== navigation) return;
    await module.render(view, args, ctx);
  } catch (err) {
    if (seq !== navigation || err.status === 401) return;
    mount(view, errorPanel(err, route, [...(err.back || []), ["#/", "Back to the flows list"]]));
  }
}

// A screen's code that could not be fetched (the server is down): the network's error, so the
// page says the server could not be reached and offers "Try again".
function unreachable(err) {
  throw new ApiError(0, `The server could not be reached (${err.message})`);
}

// An unknown address: say so and offer the way back, not a bare error.
function notFound(path) {
  for (const a of document.querySelectorAll("[data-nav]")) a.removeAttribute("aria-current");
  return h("div", { class: "panel not-found", "data-state": "not-found" },
    h("h1", {}, "Page not found"),
    h("p", {}, "There is no page at ", h("code", {}, `#${path}`), ". The link may be old or mistyped."),
    h("p", {}, h("a", { class: "btn", href: "#/" }, "Back to the overview"), " ",
      h("button", { type: "button", class: "btn", onclick: () => history.back() }, "Go back")));
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

window.addEventListener("hashchange", route);
// the skip link moves focus to the content; its href (#view) would be read as a page by the router
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("view").focus();
});
route();
