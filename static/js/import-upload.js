// Drag and drop onto the import form's file field (the button works without this).
(function () {
  "use strict";

  function setUp(zone) {
    var input = zone.querySelector("input[type=file]");
    var name = zone.querySelector("[data-drop-name]");
    if (!input) {
      return;
    }
    function show() {
      var file = input.files && input.files[0];
      if (name) {
        name.textContent = file ? "Selected: " + file.name : "";
      }
    }
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("drop-zone--active");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () {
        zone.classList.remove("drop-zone--active");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        show();
      }
    });
    input.addEventListener("change", show);
  }

  function init() {
    document.querySelectorAll("[data-drop-zone]").forEach(setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
