// Entry point. With a report embedded (`landlord sim --html`) the page draws it; otherwise it is
// the live dashboard of `landlord serve`: the owner logs in with the admin key, kept in
// sessionStorage only (gone when the tab closes), and never in a URL.
import "./app.css";
import { startDashboard, type DashboardHandle } from "./dashboard";
import { el } from "./dom";
import { renderReport } from "./report";
import type { SimReport } from "./types";

const KEY = "landlord.admin_key";

function app(): HTMLElement {
  return document.getElementById("app")!;
}

function showLogin(message: string): void {
  const input = el("input", { type: "password", id: "admin-key", autocomplete: "current-password",
    placeholder: "ll_admin_…", "aria-label": "admin key" });
  const error = el("p", { class: "error", id: "login-error", role: "alert" }, message);
  error.hidden = message === "";
  const button = el("button", { type: "submit", id: "login" }, "Log in");
  const form = el("form", { class: "login", id: "login-form" },
    el("h1", {}, "Landlord"), el("p", {}, "The owner's dashboard. Log in with the admin key that `landlord serve` printed on first start."),
    input, button, error);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (key === "") {
      error.textContent = "Enter the admin key.";
      error.hidden = false;
      return;
    }
    button.disabled = true;
    void login(key).finally(() => (button.disabled = false));
  });
  app().replaceChildren(form);
  input.focus();
}

let running: DashboardHandle | null = null;

function logout(message: string): void {
  running?.stop();
  running = null;
  sessionStorage.removeItem(KEY);
  showLogin(message);
}

async function login(key: string): Promise<void> {
  try {
    // In the page first (the charts size themselves to it); it stays empty until the key has
    // been accepted and both first answers are in.
    const root = el("main", { id: "dashboard" });
    app().append(root);
    running = await startDashboard(root, key, logout);
    sessionStorage.setItem(KEY, key);
    app().replaceChildren(root);
  } catch (e) {
    sessionStorage.removeItem(KEY);
    showLogin((e as Error).message);
  }
}

const report = (window as unknown as { __LANDLORD_REPORT__?: SimReport }).__LANDLORD_REPORT__;
if (report) {
  const root = el("main", { id: "report" });
  app().replaceChildren(root);
  renderReport(root, report);
} else {
  const saved = sessionStorage.getItem(KEY);
  if (saved) void login(saved);
  else showLogin("");
}
