// Rampart dashboard: charts from the JSON blocks the server renders into
// each page, and the live decisions feed. Everything also works without
// JavaScript: the pages' tables are rendered on the server. Text from the
// server is only ever set with textContent, never parsed as markup.
"use strict";

(function () {
  function data(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function width(el) { return Math.max(300, el.clientWidth - 16); }

  // Failures and bans over time: a line chart, bans on their own axis.
  function timeline() {
    var el = document.getElementById("timeline");
    var points = data("timeline-data");
    if (!el || !points || !points.length || typeof uPlot === "undefined") return;
    var xs = [], fails = [], bans = [];
    points.forEach(function (p) {
      xs.push(Date.parse(p.time) / 1000);
      fails.push(p.failures);
      bans.push(p.bans);
    });
    new uPlot({
      width: width(el), height: 240,
      series: [
        {},
        { label: "failures", stroke: "#b3261e", width: 2, fill: "rgba(179,38,30,0.08)" },
        { label: "bans", stroke: "#1d4ed8", width: 2, scale: "bans" }
      ],
      axes: [{}, { label: "failures" }, { side: 1, scale: "bans", label: "bans", grid: { show: false } }],
      scales: { x: { time: true } }
    }, [xs, fails, bans], el);
  }

  // Failures by country: bars, one per country, the biggest first.
  function countries() {
    var el = document.getElementById("countries");
    var rows = data("countries-data");
    if (!el || !rows || typeof uPlot === "undefined") return;
    if (!rows.length) { el.textContent = "Nothing counted."; return; }
    var names = rows.map(function (r) {
      if (r.key === "*") return "others";
      return r.key === "" ? "unknown" : r.key;
    });
    var xs = names.map(function (_, i) { return i; });
    var ys = rows.map(function (r) { return r.failures; });
    new uPlot({
      width: width(el), height: 220,
      series: [
        { label: "country", value: function (u, v) { return v == null ? "" : names[v]; } },
        { label: "failures", fill: "rgba(179,38,30,0.6)", stroke: "#b3261e", paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }
      ],
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] } },
      axes: [{ splits: function () { return xs; }, values: function (u, vs) { return vs.map(function (v) { return names[v] || ""; }); } }, {}]
    }, [xs, ys], el);
  }

  // The decisions feed: new decisions are fetched every 5 seconds and put
  // on top of the table.
  function feed() {
    var table = document.getElementById("feed");
    if (!table) return;
    var body = table.tBodies[0];
    function newest() {
      var first = body.rows[0];
      return first ? Number(first.getAttribute("data-id")) : 0;
    }
    function cell(tr, text, cls) {
      var td = document.createElement("td");
      td.textContent = text == null ? "" : String(text);
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    function when(t) {
      return t ? t.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : "";
    }
    function poll() {
      fetch("/api/decisions?after=" + newest(), { headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) {
          if (!d || !d.decisions) return;
          for (var i = d.decisions.length - 1; i >= 0; i--) {
            var x = d.decisions[i];
            var tr = document.createElement("tr");
            tr.setAttribute("data-id", String(x.id));
            if (x.revocation) tr.className = "revoked";
            cell(tr, when(x.start));
            cell(tr, x.revocation ? "lifted" : x.action);
            cell(tr, x.ip, "ip");
            cell(tr, x.jail);
            cell(tr, x.scenario);
            cell(tr, x.country);
            cell(tr, x.asn ? "AS" + x.asn + " " + (x.as_org || "") : "");
            cell(tr, x.reason);
            body.insertBefore(tr, body.firstChild);
          }
          while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
        })
        .catch(function () { /* the daemon restarting: try again at the next tick */ });
    }
    setInterval(poll, 5000);
  }

  timeline();
  countries();
  feed();
})();
