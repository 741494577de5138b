
// Test-only (tests/it/status_page.rs): measures the status page as Chromium laid it out and
// writes the numbers into the DOM (percent-encoded JSON in a `pre` element whose id is
// "layout") for --dump-dom.
(function () {
  "use strict";
  var root = document.documentElement;
  var rows = Array.prototype.map.call(
    document.querySelectorAll("#vms tbody tr"),
    function (row) {
      var box = row.getBoundingClientRect();
      return {
        vm: row.getAttribute("data-vm"),
        name: row.cells[0].firstChild.textContent,
        height: box.height,
        right: box.right,
        timelines: row.querySelectorAll("svg.timeline").length
      };
    }
  );
  var report = {
    clientWidth: root.clientWidth,
    scrollWidth: root.scrollWidth,
    scrollHeight: root.scrollHeight,
    tableWidth: document.getElementById("vms").getBoundingClientRect().width,
    mainWidth: document.querySelector("main").clientWidth,
    rows: rows,
    images: document.images.length,
    scripts: document.scripts.length,
    buttons: document.querySelectorAll("#vms thead th button").length
  };
  var out = document.createElement("pre");
  out.id = "layout";
  out.textContent = encodeURIComponent(JSON.stringify(report));
  document.body.appendChild(out);
})();
