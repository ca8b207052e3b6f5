// facecompare review console: face boxes over the images, zoom, and keyboard shortcuts. No external code.
(function () {
  "use strict";

  function placeBoxes() {
    document.querySelectorAll(".face-box").forEach(function (box) {
      // the box's ratios of the image are ratios of the frame, which is exactly the image's size
      box.style.left = (100 * parseFloat(box.dataset.left)) + "%";
      box.style.top = (100 * parseFloat(box.dataset.top)) + "%";
      box.style.width = (100 * parseFloat(box.dataset.width)) + "%";
      box.style.height = (100 * parseFloat(box.dataset.height)) + "%";
    });
  }

  function toggleZoom(show) {
    document.querySelectorAll(".zoom").forEach(function (zoom) {
      var img = zoom.querySelector("img");
      var open = show === undefined ? zoom.hidden : show;
      if (open && !img.getAttribute("src")) { img.src = img.dataset.src; }
      zoom.hidden = !open;
    });
  }

  var armed = null;
  function arm(key) {
    var button = document.querySelector('#decision-form button[data-key="' + key + '"]');
    if (!button) { return; }
    document.querySelectorAll("#decision-form button").forEach(function (b) { b.classList.remove("armed"); });
    button.classList.add("armed");
    armed = button;
    document.getElementById("comment").focus();
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  var queueIndex = -1;
  function moveQueue(step) {
    var rows = document.querySelectorAll("#cases tbody tr");
    if (!rows.length) { return; }
    queueIndex = Math.max(0, Math.min(rows.length - 1, queueIndex + step));
    rows.forEach(function (r) { r.classList.remove("selected"); });
    rows[queueIndex].classList.add("selected");
    rows[queueIndex].scrollIntoView({ block: "nearest" });
  }

  var pendingG = false;
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target && target.id === "comment") {
      event.preventDefault();
      var button = armed || null;
      if (!button) { return; }  // choose m / n / e first
      var form = document.getElementById("decision-form");
      if (form.reportValidity()) { form.requestSubmit(button); }
      return;
    }
    if (typing || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") { window.location.href = "/console/queue"; }
      return;
    }
    var help = document.getElementById("help");
    if (key === "?") { if (help && !help.open) { help.showModal(); } return; }
    if (key === "g") { pendingG = true; return; }
    if (document.body.classList.contains("case")) {
      if (key === "m" || key === "n" || key === "e") { event.preventDefault(); arm(key); }
      else if (key === "j") { follow("next-case"); }
      else if (key === "k") { follow("previous-case"); }
      else if (key === "z") { toggleZoom(); }
    } else if (document.body.classList.contains("queue")) {
      if (key === "j") { moveQueue(1); }
      else if (key === "k") { moveQueue(-1); }
      else if (key === "Enter" && queueIndex >= 0) {
        window.location.href = document.querySelectorAll("#cases tbody tr")[queueIndex].dataset.href;
      }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    placeBoxes();
    document.querySelectorAll(".face-box").forEach(function (box) {
      box.addEventListener("click", function (event) { event.preventDefault(); toggleZoom(true); });
    });
    document.querySelectorAll("#cases tbody tr").forEach(function (row) {
      row.addEventListener("click", function (event) {
        if (event.target.tagName !== "A") { window.location.href = row.dataset.href; }
      });
    });
    document.querySelectorAll("#decision-form button").forEach(function (button) {
      button.addEventListener("click", function () { armed = button; });
    });
    var helpButton = document.querySelector("[data-help]");
    if (helpButton) { helpButton.addEventListener("click", function () { document.getElementById("help").showModal(); }); }
  });
})();
