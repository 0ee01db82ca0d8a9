/* A small bar chart drawn as inline SVG (no library, no network): LLMW.barChart(box, days, opts).
   `days` is [{label, value}] oldest first; each bar carries a <title> with its day and value.
   The bars stretch to the box's width; the text (scale, first and last day) is HTML, so it
   stays legible at any width. */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 160, TOP = 4;

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function barChart(box, days, opts) {
    const format = opts.format || String;
    const most = days.reduce(function (m, d) { return Math.max(m, d.value); }, 0);
    const total = days.reduce(function (s, d) { return s + d.value; }, 0);
    const svg = el("svg", {
      viewBox: "0 0 " + W + " " + H, class: "chart", role: "img",
      "aria-label": opts.label + ": " + format(total) + " in all over " + days.length + " days, at most " +
        format(most) + " a day",
      preserveAspectRatio: "none",
    });
    const step = W / Math.max(1, days.length);
    svg.appendChild(el("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: "chart-axis", "vector-effect": "non-scaling-stroke" }));
    days.forEach(function (day, i) {
      const height = most > 0 ? Math.max(day.value > 0 ? 2 : 0, ((H - TOP) * day.value) / most) : 0;
      const bar = el("rect", {
        x: (i * step + step * 0.15).toFixed(2), width: (step * 0.7).toFixed(2),
        y: (H - height).toFixed(2), height: height.toFixed(2), class: "chart-bar " + (opts.tone || ""),
      });
      bar.appendChild(el("title", {}, day.label + ": " + format(day.value)));
      svg.appendChild(bar);
    });
    const scale = document.createElement("p");
    scale.className = "chart-scale";
    scale.textContent = "highest day: " + format(most);
    const ticks = document.createElement("p");
    ticks.className = "chart-ticks";
    if (days.length) {
      ticks.appendChild(document.createElement("span")).textContent = days[0].label;
      ticks.appendChild(document.createElement("span")).textContent = days[days.length - 1].label;
    }
    box.replaceChildren(scale, svg, ticks);
  }

  window.LLMW = Object.assign(window.LLMW || {}, { barChart: barChart });
})();
