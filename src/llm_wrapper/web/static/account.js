/* The account page: GET /v1/me with the token in the Authorization header (not counted). */
"use strict";

(function () {
  const L = window.LLMW;
  const form = document.getElementById("account-form");
  const errorBox = document.getElementById("form-error");
  const panel = document.getElementById("account");
  const keeper = L.tokenKeeper(form.querySelector("[data-token-field]"), function () { panel.hidden = true; });
  const DAY = 86400000;

  function text(id, value) { document.getElementById(id).textContent = String(value); }
  function count(n) { return Number(n || 0).toLocaleString("en-US"); }

  function expiryNote(expiry) {
    if (!expiry) return "This token does not expire.";
    const ms = Date.parse(String(expiry).replace(" ", "T") + "Z") - Date.now();
    if (isNaN(ms)) return "";
    if (ms <= 0) return "This token has expired.";
    const days = Math.floor(ms / DAY);
    if (days >= 365) return "More than a year from now.";
    if (days >= 1) return "In " + days + " day" + (days === 1 ? "" : "s") + ".";
    return "Less than a day from now.";
  }

  function render(me) {
    text("acct-username", me.username);
    text("acct-today", count(me.requests_today));
    text("acct-limit", count(me.rate_limit));
    text("acct-remaining", count(me.remaining_today));
    text("acct-lifetime", count(me.lifetime_requests));
    const stamp = /^(\S+) (\d\d:\d\d UTC)$/.exec(me.expiry ? L.when(me.expiry) : "");
    text("acct-expiry", stamp ? stamp[1] : me.expiry || "Never");
    text("acct-expiry-note", (stamp ? "At " + stamp[2] + ". " : "") + expiryNote(me.expiry));
    text("acct-waiting", count(me.waiting_updates));
    const share = me.rate_limit > 0 ? Math.min(100, (100 * me.requests_today) / me.rate_limit) : 100;
    document.getElementById("acct-meter").style.width = share.toFixed(1) + "%";

    const monitor = me.active_monitor;
    document.getElementById("acct-monitor").hidden = !monitor;
    document.getElementById("acct-no-monitor").hidden = !!monitor;
    if (monitor) {
      text("acct-monitor-query", monitor.query || "—");
      text("acct-monitor-frequency", L.cadence(monitor.cadence || monitor.frequency));
      text("acct-monitor-created", L.when(monitor.created_at));
      text("acct-monitor-id", monitor.monitor_id || "—");
    }
    panel.hidden = false;
  }

  async function load(token, moveFocus) {
    L.clearError(errorBox, form);
    L.setBusy(form, true);
    const answer = await L.api("GET", "/v1/me", token);
    L.setBusy(form, false);
    if (answer.ok && answer.data) {
      render(answer.data);
      if (moveFocus) panel.focus();
      return;
    }
    panel.hidden = true;
    if (answer.status === 401) keeper.forget();
    L.showError(errorBox, L.explain(answer, "load your account"), answer.status === 401 ? keeper.input : null);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const token = keeper.take();
    if (!token) {
      L.clearError(errorBox, form);
      L.showError(errorBox, "Enter your API token first.", keeper.input);
      return;
    }
    load(token, true);
  });

  document.getElementById("refresh").addEventListener("click", function () {
    const token = keeper.current();
    if (token) load(token, false);
  });
})();
