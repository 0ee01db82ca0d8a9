/* The account page: GET /v1/me and GET /v1/usage with the token in the Authorization header (neither counted). */
"use strict";

(function () {
  const L = window.LLMW;
  const form = document.getElementById("account-form");
  const errorBox = document.getElementById("form-error");
  const panel = document.getElementById("account");
  const keeper = L.tokenKeeper(form.querySelector("[data-token-field]"), function () { panel.hidden = true; });
  const DAY = 86400000;

  function text(id, value) { document.getElementById(id).textContent = String(value); }
  function usd(n) {  /* exact enough for a chart's scale and titles */
    const value = Number(n || 0);
    return "$" + (value !== 0 && Math.abs(value) < 0.01 ? value.toPrecision(2) : value.toFixed(2));
  }
  function money(n) {  /* for a headline figure: cents */
    const value = Number(n || 0);
    return value > 0 && value < 0.01 ? "<$0.01" : "$" + value.toFixed(2);
  }

  function renderUsage(rows) {
    const byDay = {};
    rows.forEach(function (row) {
      const day = byDay[row.date] || (byDay[row.date] = { requests: 0, cost: 0 });
      day.requests += row.requests;
      day.cost += row.cost_usd;
    });
    const days = [], today = new Date();
    for (let i = 29; i >= 0; i--) {
      const date = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
      const key = date.toISOString().slice(0, 10);
      days.push({ key: key, label: key.slice(5), found: byDay[key] || { requests: 0, cost: 0 } });
    }
    const requests = days.map(function (d) { return { label: d.key, value: d.found.requests }; });
    const cost = days.map(function (d) { return { label: d.key, value: d.found.cost }; });
    const totalRequests = requests.reduce(function (s, d) { return s + d.value; }, 0);
    const totalCost = cost.reduce(function (s, d) { return s + d.value; }, 0);
    text("acct-usage-summary", count(totalRequests) + " requests, " + money(totalCost) + " in the last 30 days (UTC days).");
    L.barChart(document.getElementById("acct-chart-requests"), requests, { label: "Requests per day", format: count });
    L.barChart(document.getElementById("acct-chart-cost"), cost, { label: "Cost per day", format: usd, tone: "chart-bar-cost" });
  }
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

    const budgeted = me.budget_usd !== null && me.budget_usd !== undefined;
    document.getElementById("acct-budget-box").hidden = !budgeted;
    if (budgeted) {
      text("acct-budget-period", me.budget_period === "day" ? "today" : "this month");
      text("acct-spent", money(me.spent_usd));
      text("acct-budget", money(me.budget_usd));
      const used = me.budget_usd > 0 ? Math.min(100, (100 * me.spent_usd) / me.budget_usd) : 100;
      document.getElementById("acct-budget-meter").style.width = used.toFixed(1) + "%";
      text("acct-budget-note", me.spent_usd >= me.budget_usd
        ? "Spent: requests are refused until the " + (me.budget_period || "month") + " ends (UTC)."
        : money(Math.max(0, me.budget_usd - me.spent_usd)) + " left · starts again each " + (me.budget_period || "month") + " (UTC)");
    }

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
      const usage = await L.api("GET", "/v1/usage", token);
      renderUsage(usage.ok && usage.data && Array.isArray(usage.data.data) ? usage.data.data : []);
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
