
// Progressive enhancement: each column header of the VM table becomes a button that sorts the
// rows by that column's `data-sort` keys (a second click reverses). Without this script the
// page reads the same, in the order ovrun wrote it.
(function () {
  "use strict";
  var table = document.getElementById("vms");
  if (!table || !table.tHead || !table.tBodies.length) {
    return;
  }
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  function key(row, column, numeric) {
    var text = row.cells[column].getAttribute("data-sort") || "";
    return numeric ? parseFloat(text) : text.toLowerCase();
  }
  function sort(header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var numeric = header.getAttribute("data-type") === "number";
    Array.prototype.forEach.call(headers, function (other) {
      other.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, column, numeric);
      var y = key(b, column, numeric);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }
  Array.prototype.forEach.call(headers, function (header, column) {
    var button = document.createElement("button");
    button.type = "button";
    button.title = "Sort by this column";
    while (header.firstChild) {
      button.appendChild(header.firstChild);
    }
    header.appendChild(button);
    button.addEventListener("click", function () {
      sort(header, column);
    });
  });
})();
