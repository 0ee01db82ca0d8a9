/* Shared by every page: copy buttons, the in-memory token, calls to the JSON API.
   A token typed into a page lives only in a variable of that page: it is never
   written to storage, cookies, the URL or the document, and goes when the page does. */
"use strict";

(function () {
  const root = document.body.dataset.root || "";

  function selectText(el) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function flash(button, text) {
    const before = button.dataset.label || button.textContent;
    button.dataset.label = before;
    button.textContent = text;
    window.setTimeout(function () { button.textContent = before; }, 1800);
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      const target = document.getElementById(button.dataset.copy);
      if (!target) return;
      const text = target.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { flash(button, "Copied"); },
          function () { selectText(target); flash(button, "Press Ctrl+C"); }
        );
      } else {
        selectText(target);
        flash(button, "Press Ctrl+C");
      }
    });
  });

  /* The token field: what is typed is taken into memory and the field is emptied. */
  function tokenKeeper(field, onForget) {
    const input = field.querySelector("input");
    const held = field.querySelector(".held");
    const empty = input.placeholder;
    let token = null;

    function show() {
      held.hidden = token === null;
      input.placeholder = token === null ? empty : "Held in memory";
    }
    field.querySelector("[data-forget-token]").addEventListener("click", function () {
      token = null;
      show();
      input.focus();
      if (onForget) onForget();
    });
    return {
      input: input,
      take: function () {
        const typed = input.value.trim();
        input.value = "";
        if (typed) token = typed;
        show();
        return token;
      },
      current: function () { return token; },
      forget: function () { token = null; show(); },
    };
  }

  async function api(method, path, token, body) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    const init = { method: method, headers: headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(root + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  /* An API failure in plain words. `what` names the thing being done ("create the monitor"). */
  function explain(result, what) {
    const error = (result.data && result.data.error) || {};
    const message = typeof error.message === "string" ? error.message : "";
    switch (result.status) {
      case 0:
        return "Could not reach this server. Check your internet connection and try again.";
      case 401:
        if (error.code === "token_expired") return "This API token has expired. Ask for a new one to continue.";
        if (/missing|malformed/i.test(message)) return "Enter your API token first.";
        return "That API token was not recognised. Check that you copied all of it — it starts with llmw_.";
      case 400:
        if (error.param === "query" || /query/i.test(message)) {
          return "Please describe what to watch — the “What to watch” field is empty.";
        }
        return "The server could not accept this: " + (message || "the request was not valid") + ".";
      case 404:
        return "This server does not offer that feature (" + (message || "not found") + ").";
      case 429:
        return "This token has used up today’s requests. The count starts again at 00:00 UTC.";
      case 502:
        if (!/monitor/.test(what) && !/parallel/i.test(message)) {
          return "The server could not reach a service it depends on, so we could not " + what + ". Please try again shortly.";
        }
        return "We could not reach Parallel, the service that runs monitors, so we could not " + what +
          ". Nothing was changed — please try again in a few minutes.";
      case 503:
        if (!/monitor/.test(what) && !/parallel/i.test(message)) {
          return "The service is temporarily unavailable, so we could not " + what + ". Please try again shortly.";
        }
        return "Monitors are not available on this server right now: the connection to Parallel has not been set up. " +
          "Please let the operator know.";
      case 504:
        return "Parallel took too long to answer, so we could not " + what + ". Please try again in a few minutes.";
      default:
        return "Something went wrong and we could not " + what + " (error " + result.status + ")" +
          (message ? ": " + message : ".");
    }
  }

  /* "YYYY-MM-DD HH:MM:SS" (UTC), ISO 8601 or epoch seconds, shown as "YYYY-MM-DD HH:MM UTC". */
  function when(value) {
    if (value === null || value === undefined || value === "") return "—";
    let date;
    if (typeof value === "number") {
      date = new Date(value * 1000);
    } else {
      let text = String(value);
      if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) text = text.replace(" ", "T") + "Z";
      date = new Date(text);
    }
    if (isNaN(date.getTime())) return String(value);
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  /* A cadence word or one of Parallel's frequencies ("1d", "6h", "2w") in plain words. */
  function cadence(value) {
    const words = { hourly: "1h", daily: "1d", weekly: "1w", every_two_weeks: "2w" };
    const text = String(value || "");
    const match = /^(\d+)([hdw])$/.exec(words[text] || text);
    if (!match) return text || "—";
    const n = Number(match[1]);
    const unit = { h: "hour", d: "day", w: "week" }[match[2]];
    return n === 1 ? "Every " + unit : n === 2 && unit === "week" ? "Every two weeks" : "Every " + n + " " + unit + "s";
  }

  function showError(box, text, focusTarget) {
    box.textContent = text;
    box.hidden = false;
    if (focusTarget) {
      focusTarget.setAttribute("aria-invalid", "true");
      focusTarget.focus();
    } else {
      box.focus();
    }
  }

  function clearError(box, form) {
    box.hidden = true;
    box.textContent = "";
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function setBusy(form, busy) {
    form.querySelector("button[type=submit]").disabled = busy;
    const label = form.querySelector(".busy");
    if (label) label.hidden = !busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  window.LLMW = {
    api: api, explain: explain, when: when, cadence: cadence, tokenKeeper: tokenKeeper,
    showError: showError, clearError: clearError, setBusy: setBusy,
  };
})();
