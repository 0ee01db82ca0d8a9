/* The operator console: the admin API (/v1/admin/…) with the admin key in the Authorization header only.
   The key lives in this closure; nothing is written to storage, cookies or the address bar. */
"use strict";

(function () {
  const L = window.LLMW;
  const form = document.getElementById("admin-form");
  const errorBox = document.getElementById("form-error");
  const consoleBox = document.getElementById("console");
  const consoleError = document.getElementById("console-error");
  const keeper = L.tokenKeeper(form.querySelector("[data-token-field]"), function () { consoleBox.hidden = true; });
  const DAY = 86400000;
  let tokens = [];
  let editing = null;

  function $(id) { return document.getElementById(id); }
  function count(n) { return Number(n || 0).toLocaleString("en-US"); }
  function usd(n) {
    const value = Number(n || 0);
    if (value === 0 || Math.abs(value) >= 0.01) return "$" + value.toFixed(2);
    return "$" + value.toFixed(Math.min(9, 1 - Math.floor(Math.log10(Math.abs(value)))));  /* two figures, no exponent */
  }
  function money(n) {  /* a headline figure: cents */
    const value = Number(n || 0);
    return value > 0 && value < 0.01 ? "<$0.01" : "$" + value.toFixed(2);
  }
  /* A new row of `body` whose first cell is its row header. */
  function headedRow(body, text) {
    const row = body.insertRow();
    const head = document.createElement("th");
    head.scope = "row";
    head.textContent = text;
    row.appendChild(head);
    return row;
  }
  function cell(row, value, className) {
    const td = row.insertCell();
    td.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    if (className) td.className = className;
    return td;
  }
  /* Each cell names its column (shown before it when a phone-width screen stacks the rows). */
  function labelled(body) {
    const heads = body.closest("table").tHead.rows[0].cells;
    Array.prototype.forEach.call(body.rows, function (row) {
      Array.prototype.forEach.call(row.cells, function (c, i) {
        if (c.colSpan === 1 && !c.classList.contains("row-actions") && heads[i]) c.dataset.label = heads[i].textContent;
      });
    });
  }
  function empty(body, columns, message) {
    const td = body.insertRow().insertCell();
    td.colSpan = columns;
    td.className = "empty";
    td.textContent = message;
  }
  function problem(answer, what) {
    const error = (answer.data && answer.data.error) || {};
    if (answer.status === 0) return "Could not reach this server to " + what + ".";
    if (answer.status === 401) return "That admin key was not accepted.";
    return "Could not " + what + " (error " + answer.status + ")" + (error.message ? ": " + error.message : ".");
  }
  function fail(answer, what, focus) {
    L.showError(consoleError, problem(answer, what), focus || null);
    if (answer.status === 401) { keeper.forget(); consoleBox.hidden = true; L.showError(errorBox, problem(answer, what), keeper.input); }
  }
  function call(method, path, body) { return L.api(method, path, keeper.current(), body); }
  function models(text) {
    const list = text.split(",").map(function (m) { return m.trim(); }).filter(Boolean);
    return list.length ? list : null;
  }
  /* The form field a 400 names (its `param`), to focus. */
  function field(prefix, answer) {
    const names = { username: "username", expiry: "expiry", rate_limit: "limit", budget_usd: "budget", budget_period: "period", models: "models" };
    const param = answer.data && answer.data.error && answer.data.error.param;
    return $(prefix + (names[param] || (prefix === "new-" ? "username" : "limit")));
  }
  function daysAgo(n) {
    const now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - n)).toISOString().slice(0, 10);
  }

  /* Tokens ---------------------------------------------------------------------------- */

  function renderTokens() {
    const body = $("token-rows");
    const wanted = $("token-search").value.trim().toLowerCase();
    const shown = tokens.filter(function (t) { return !wanted || t.username.toLowerCase().indexOf(wanted) !== -1; });
    body.replaceChildren();
    shown.forEach(function (t) {
      const row = headedRow(body, t.username);
      row.dataset.id = t.id;
      cell(row, t.id, "mono");
      const expires = cell(row, t.expiry ? L.when(t.expiry) : "never");
      if (t.expired) {
        const badge = expires.appendChild(document.createElement("span"));
        badge.className = "badge badge-bad";
        badge.textContent = "expired";
      }
      cell(row, count(t.requests_today) + " / " + count(t.rate_limit));
      cell(row, count(t.lifetime_requests));
      cell(row, t.budget_usd === null ? usd(t.spent_usd) + " · no budget" : usd(t.spent_usd) + " / " + usd(t.budget_usd) + " a " + t.budget_period);
      cell(row, t.models ? t.models.join(", ") : "all");
      const actions = row.insertCell();
      actions.className = "row-actions";
      const edit = actions.appendChild(document.createElement("button"));
      edit.type = "button";
      edit.className = "button button-secondary button-small";
      edit.textContent = "Edit";
      edit.setAttribute("aria-label", "Edit the token of " + t.username + " (" + t.id + ")");
      edit.addEventListener("click", function () { startEdit(t, edit); });
      const remove = actions.appendChild(document.createElement("button"));
      remove.type = "button";
      remove.className = "button button-danger button-small";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", "Delete the token of " + t.username + " (" + t.id + ")");
      remove.addEventListener("click", function () { removeToken(t); });
    });
    if (!shown.length) empty(body, 8, tokens.length ? "No token’s username matches." : "No tokens yet.");
    labelled(body);
    $("token-count").textContent = shown.length + " of " + tokens.length + " token" + (tokens.length === 1 ? "" : "s") + " shown.";
  }

  async function loadTokens() {
    const answer = await call("GET", "/v1/admin/tokens");
    if (!answer.ok) return fail(answer, "list the tokens"), false;
    tokens = answer.data.data || [];
    renderTokens();
    return true;
  }

  $("token-search").addEventListener("input", renderTokens);

  $("create-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    L.clearError(consoleError, this);
    const budget = $("new-budget").value.trim();
    const body = {
      username: $("new-username").value.trim(),
      expiry: $("new-expiry").value.trim(),
      rate_limit: Number($("new-limit").value),
      models: models($("new-models").value),
    };
    if (budget) { body.budget_usd = Number(budget); body.budget_period = $("new-period").value; }
    const answer = await call("POST", "/v1/admin/tokens", body);
    if (!answer.ok) return fail(answer, "create the token", field("new-", answer));
    this.reset();
    $("create-box").open = false;
    $("secret-user").textContent = answer.data.username;
    $("secret-value").textContent = answer.data.token;
    $("secret-box").hidden = false;
    $("secret-box").focus();
    await loadTokens();
  });

  $("secret-copy").addEventListener("click", function () {
    const button = this;
    const done = function (text) { button.textContent = text; window.setTimeout(function () { button.textContent = "Copy"; }, 1800); };
    if (navigator.clipboard) {
      navigator.clipboard.writeText($("secret-value").textContent).then(function () { done("Copied"); }, function () { done("Press Ctrl+C"); });
    } else {
      done("Press Ctrl+C");
    }
    const range = document.createRange();
    range.selectNodeContents($("secret-value"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  });
  $("secret-done").addEventListener("click", function () {
    $("secret-value").textContent = "";  /* shown once: gone from the page */
    $("secret-box").hidden = true;
    $("token-search").focus();
  });

  function startEdit(t, opener) {
    editing = { token: t, opener: opener };
    $("edit-user").textContent = t.username;
    $("edit-id").textContent = t.id;
    $("edit-limit").value = t.rate_limit;
    $("edit-expiry").value = t.expiry || "";
    $("edit-budget").value = t.budget_usd === null ? "" : t.budget_usd;
    $("edit-period").value = t.budget_period || "month";
    $("edit-models").value = t.models ? t.models.join(", ") : "";
    $("edit-form").hidden = false;
    $("edit-limit").focus();
  }
  function stopEdit() {
    $("edit-form").hidden = true;
    const opener = editing && editing.opener;
    editing = null;
    if (opener && document.body.contains(opener)) opener.focus(); else $("token-search").focus();
  }
  $("edit-cancel").addEventListener("click", stopEdit);
  $("edit-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    if (!editing) return;
    L.clearError(consoleError, this);
    const budget = $("edit-budget").value.trim();
    const body = {
      rate_limit: Number($("edit-limit").value),
      expiry: $("edit-expiry").value.trim(),
      budget_usd: budget ? Number(budget) : null,
      models: models($("edit-models").value),
    };
    if (budget) body.budget_period = $("edit-period").value;
    const answer = await call("PATCH", "/v1/admin/tokens/" + encodeURIComponent(editing.token.id), body);
    if (!answer.ok) return fail(answer, "change the token", field("edit-", answer));
    await loadTokens();
    const id = editing.token.id;
    editing = null;
    $("edit-form").hidden = true;
    const row = document.querySelector('#token-rows tr[data-id="' + id + '"] button');
    if (row) row.focus();
  });

  async function removeToken(t) {
    if (!window.confirm("Delete the token of " + t.username + " (" + t.id + ")? Requests with it are refused at once. This cannot be undone.")) return;
    const answer = await call("DELETE", "/v1/admin/tokens/" + encodeURIComponent(t.id));
    if (!answer.ok) return fail(answer, "delete the token");
    if (editing && editing.token.id === t.id) { editing = null; $("edit-form").hidden = true; }
    await loadTokens();
    $("token-search").focus();
  }

  /* Usage ----------------------------------------------------------------------------- */

  function top(rows, key, body) {
    const sums = {};
    rows.forEach(function (r) {
      const s = sums[r[key]] || (sums[r[key]] = { requests: 0, tokens: 0, cost: 0 });
      s.requests += r.requests; s.tokens += r.total_tokens; s.cost += r.cost_usd;
    });
    const ranked = Object.keys(sums).sort(function (a, b) { return sums[b].requests - sums[a].requests || (a < b ? -1 : 1); }).slice(0, 10);
    body.replaceChildren();
    ranked.forEach(function (name) {
      const row = headedRow(body, name);
      cell(row, count(sums[name].requests), "num");
      cell(row, count(sums[name].tokens), "num");
      cell(row, usd(sums[name].cost), "num");
    });
    if (!ranked.length) empty(body, 4, "No requests in this period.");
    labelled(body);
  }

  async function loadUsage() {
    const days = Number($("period").value);
    const answer = await call("GET", "/v1/admin/usage?start=" + daysAgo(days - 1) + "&end=" + daysAgo(0));
    if (!answer.ok) return fail(answer, "load the usage");
    const rows = answer.data.data || [];
    const byDay = {};
    rows.forEach(function (r) {
      const d = byDay[r.date] || (byDay[r.date] = { requests: 0, tokens: 0, cost: 0 });
      d.requests += r.requests; d.tokens += r.total_tokens; d.cost += r.cost_usd;
    });
    const series = { requests: [], tokens: [], cost: [] };
    for (let i = days - 1; i >= 0; i--) {
      const key = daysAgo(i), found = byDay[key] || { requests: 0, tokens: 0, cost: 0 };
      series.requests.push({ label: key, value: found.requests });
      series.tokens.push({ label: key, value: found.tokens });
      series.cost.push({ label: key, value: found.cost });
    }
    const sum = function (list) { return list.reduce(function (s, d) { return s + d.value; }, 0); };
    $("usage-summary").textContent = count(sum(series.requests)) + " requests, " + count(sum(series.tokens)) + " tokens, " +
      money(sum(series.cost)) + " over the last " + days + " days (UTC days).";
    L.barChart($("chart-requests"), series.requests, { label: "Requests per day", format: count });
    L.barChart($("chart-tokens"), series.tokens, { label: "Tokens per day", format: count, tone: "chart-bar-tokens" });
    L.barChart($("chart-cost"), series.cost, { label: "Cost per day", format: usd, tone: "chart-bar-cost" });
    top(rows, "username", $("top-users"));
    top(rows, "model", $("top-models"));
  }

  $("period").addEventListener("change", loadUsage);

  /* Provider health and monitors ------------------------------------------------------- */

  function ms(value) { return value === null || value === undefined ? "—" : Math.round(value).toLocaleString("en-US") + " ms"; }

  async function loadProviders() {
    const answer = await call("GET", "/v1/admin/providers");
    if (!answer.ok) return fail(answer, "load the provider health");
    const body = $("provider-rows");
    body.replaceChildren();
    (answer.data.data || []).forEach(function (p) {
      const row = headedRow(body, p.provider);
      cell(row, p.model, "mono");
      cell(row, count(p.requests), "num");
      const errors = cell(row, count(p.errors) + (p.requests ? " (" + (100 * p.error_rate).toFixed(p.error_rate < 0.1 && p.error_rate > 0 ? 1 : 0) + "%)" : ""), "num");
      if (p.error_rate >= 0.5 && p.requests) errors.classList.add("bad");
      cell(row, ms(p.p50_ms), "num");
      cell(row, ms(p.p95_ms), "num");
      const cooling = cell(row, p.cooling_down_until ? "until " + L.when(p.cooling_down_until) : "ready");
      const badge = document.createElement("span");
      badge.className = "badge " + (p.cooling_down_until ? "badge-bad" : "badge-ok");
      badge.textContent = p.cooling_down_until ? "cooling down" : "ok";
      cooling.prepend(badge);
    });
    if (!body.rows.length) empty(body, 7, "No providers are configured.");
    labelled(body);
  }

  function age(iso) {
    const ms = Date.now() - Date.parse(iso);
    if (isNaN(ms)) return "—";
    const days = Math.floor(ms / DAY), hours = Math.floor(ms / 3600000), minutes = Math.floor(ms / 60000);
    if (days >= 1) return days + " day" + (days === 1 ? "" : "s");
    if (hours >= 1) return hours + " hour" + (hours === 1 ? "" : "s");
    return Math.max(0, minutes) + " min";
  }

  async function loadMonitors() {
    const answer = await call("GET", "/v1/admin/monitors");
    if (!answer.ok) return fail(answer, "load the monitors");
    const all = answer.data.data || [];
    const active = all.filter(function (m) { return m.active; });
    const body = $("monitor-rows");
    body.replaceChildren();
    active.forEach(function (m) {
      const row = headedRow(body, m.username);
      cell(row, m.query, "query");
      cell(row, L.cadence(m.cadence || m.frequency));
      const created = cell(row, age(m.created_at));
      created.title = L.when(m.created_at);
      cell(row, count(m.events_waiting), "num");
    });
    if (!active.length) empty(body, 5, "No active monitors.");
    labelled(body);
    $("monitor-count").textContent = active.length + " active, " + (all.length - active.length) + " deactivated.";
  }

  /* The whole console ------------------------------------------------------------------ */

  async function load(moveFocus) {
    L.clearError(errorBox, form);
    L.clearError(consoleError, consoleBox);
    L.setBusy(form, true);
    const ok = await loadTokens();
    L.setBusy(form, false);
    if (!ok) return;
    L.clearError(errorBox, form);
    consoleBox.hidden = false;
    await Promise.all([loadUsage(), loadProviders(), loadMonitors()]);
    if (moveFocus) consoleBox.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const key = keeper.take();
    if (!key) {
      L.clearError(errorBox, form);
      L.showError(errorBox, "Enter the admin key first.", keeper.input);
      return;
    }
    load(true);
  });

  $("refresh").addEventListener("click", function () { if (keeper.current()) load(false); });
})();
