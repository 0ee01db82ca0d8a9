/* The monitor form: POST /v1/monitors with the token in the Authorization header. */
"use strict";

(function () {
  const L = window.LLMW;
  const form = document.getElementById("monitor-form");
  const errorBox = document.getElementById("form-error");
  const query = document.getElementById("query");
  const result = document.getElementById("result");
  const keeper = L.tokenKeeper(form.querySelector("[data-token-field]"));

  function text(id, value) { document.getElementById(id).textContent = value; }

  function showResult(monitor, sent) {
    const cadence = monitor.cadence || monitor.frequency || sent.cadence;
    text("result-id", monitor.monitor_id || "—");
    text("result-query", monitor.query || sent.query);
    text("result-cadence", L.cadence(cadence));
    text("result-created", L.when(monitor.created_at));
    const replaced = document.getElementById("result-replaced");
    if (monitor.replaced) {
      replaced.textContent = "This replaced your previous monitor (" + monitor.replaced +
        "), which has now stopped. You can have one active monitor at a time.";
      replaced.hidden = false;
    } else {
      replaced.hidden = true;
      replaced.textContent = "";
    }
    result.hidden = false;
    result.focus();
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    L.clearError(errorBox, form);
    result.hidden = true;
    const token = keeper.take();
    const sent = {
      query: query.value.trim(),
      cadence: (form.querySelector("input[name=cadence]:checked") || { value: "daily" }).value,
    };
    if (!token) {
      L.showError(errorBox, "Enter your API token first.", keeper.input);
      return;
    }
    if (!sent.query) {
      L.showError(errorBox, "Please describe what to watch — the “What to watch” field is empty.", query);
      return;
    }
    L.setBusy(form, true);
    const answer = await L.api("POST", "/v1/monitors", token, sent);
    L.setBusy(form, false);
    if (answer.ok && answer.data) {
      showResult(answer.data, sent);
      return;
    }
    let focusTarget = null;
    if (answer.status === 401) {
      keeper.forget();
      focusTarget = keeper.input;
    } else if (answer.status === 400) {
      focusTarget = query;
    }
    L.showError(errorBox, L.explain(answer, "create the monitor"), focusTarget);
  });
})();
