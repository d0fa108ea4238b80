// The dashboard's live feed: scans pushed by the hub over server-sent events (no inline
// script: the page's CSP allows scripts from this origin only). Rows are text, never HTML.
(function () {
  "use strict";
  var list = document.getElementById("live-feed");
  if (!list || !window.EventSource) {
    return;
  }
  var source = new EventSource(list.getAttribute("data-src"));
  source.addEventListener("scan", function (event) {
    var row = JSON.parse(event.data);
    var item = document.createElement("li");
    item.className = row.verdict_code === "allow" ? "allow" : "deny";
    item.textContent = [row.time, row.lane, row.direction, row.verdict, row.reason, row.who]
      .filter(function (part) { return part; })
      .join("  ");
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 100) {
      list.removeChild(list.lastChild);
    }
  });
  source.addEventListener("open", function () { list.classList.add("live"); });
  source.addEventListener("error", function () { list.classList.remove("live"); });
})();
