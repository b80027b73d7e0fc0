// Starts the UI once every page is defined (app.js, moments.js): the filter bar, then the page or the report.
"use strict";

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const data = new FormData(e.target);
  const { name, params } = route();
  for (const key of ["from", "to", "channels", "where"]) {
    const value = String(data.get(key) || "").trim();
    if (value) params.set("f_" + key, value); else params.delete("f_" + key);
  }
  go(name, params);
});
document.getElementById("clear-filters").addEventListener("click", () => {
  const { name, params } = route();
  ["f_from", "f_to", "f_channels", "f_where"].forEach((k) => params.delete(k));
  go(name, params);
});
if (window.WAYMARK_REPORT) {
  renderReport(window.WAYMARK_REPORT);
} else {
  window.addEventListener("hashchange", render);
  render();
}
