// loopline UI: draws the charts (plotly.js, served by the UI) and keeps the compare
// button in step with the ticked runs. Pages work without it, charts excepted.
(function () {
  "use strict";

  function drawCharts() {
    if (typeof window.Plotly === "undefined") {
      document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
        el.textContent = "charts need plotly.js: install the plotly package (pip install 'loopline[ui]')";
      });
      return;
    }
    document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      var figure = JSON.parse(el.getAttribute("data-figure"));
      window.Plotly.newPlot(el, figure.data, figure.layout, {
        displaylogo: false,
        responsive: true,
        modeBarButtonsToRemove: ["sendDataToCloud"],
      }).then(function () { el.setAttribute("data-drawn", "1"); });
    });
  }

  function compareButton() {
    var form = document.getElementById("compare-form");
    var button = document.getElementById("compare-button");
    if (!form || !button) { return; }
    function update() {
      var ticked = form.querySelectorAll("input[name=run]:checked").length;
      button.disabled = ticked < 2;
      button.textContent = ticked ? "Compare " + ticked + " selected" : "Compare selected";
    }
    form.addEventListener("change", update);
    update();
  }

  function autoSubmit() {
    document.querySelectorAll("select[data-submit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    compareButton();
    autoSubmit();
  });
})();
