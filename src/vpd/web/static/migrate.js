// The VM page's migration dialog (operators): "Check" runs the dry run, "Migrate" the migration,
// both through POST /api/v1/migrations; the job's Server-Sent Events feed a uPlot chart (data
// remaining, dirty rate, throughput) and the list of policy steps; at the end the server renders
// the report (/fragments/jobs/{id}/migration-report). Without JavaScript the page shows the last
// report from the journal instead.
(function () {
  "use strict";
  var dialog = document.getElementById("migrate-dialog");
  var opener = document.getElementById("migrate-open");
  if (!dialog || !opener) { return; }
  var form = document.getElementById("migrate-form");
  var status = document.getElementById("migrate-status");
  var chartBox = document.getElementById("migrate-chart");
  var steps = document.getElementById("migrate-steps");
  var report = document.getElementById("migrate-report");
  var source = null, chart = null, running = false;
  var MiB = 1048576;

  opener.hidden = false;
  opener.addEventListener("click", function () { dialog.showModal(); });
  if (location.hash === "#migrate") { dialog.showModal(); }  // the VM list's "Migrate…" link

  function say(text, cls) { status.textContent = text; status.className = cls || ""; }

  function newChart() {
    if (chart) { chart.destroy(); chart = null; }
    chartBox.textContent = "";
    if (typeof uPlot === "undefined") { return; }
    var width = Math.max(320, Math.min(chartBox.clientWidth || 900, 960));
    chart = new uPlot({
      width: width, height: 240, title: "migration (per second)",
      scales: {x: {time: false}},
      series: [
        {label: "s"},
        {label: "remaining MiB", stroke: "#0b57d0", width: 2, scale: "mib"},
        {label: "throughput MiB/s", stroke: "#1b5e20", width: 2, scale: "rate"},
        {label: "dirty MiB/s", stroke: "#b00020", width: 2, scale: "rate"},
      ],
      axes: [{label: "elapsed s"}, {scale: "mib", label: "MiB"}, {scale: "rate", side: 1, label: "MiB/s",
                                                                    grid: {show: false}}],
    }, [[], [], [], []], chartBox);
    dialog.chart = chart;  // for tests and the browser's console
  }

  function plot(d) {
    if (!chart || d.data_remaining === null || d.data_remaining === undefined) { return; }
    var data = chart.data;
    data[0].push(d.elapsed_s);
    data[1].push(d.data_remaining / MiB);
    data[2].push((d.throughput_bps || 0) / MiB);
    data[3].push((d.dirty_rate_bps || 0) / MiB);
    chart.setData(data);
  }

  function finish(jobId) {
    running = false;
    fetch("/fragments/jobs/" + encodeURIComponent(jobId) + "/migration-report",
          {headers: {"X-Requested-With": "vpd"}})
      .then(function (r) { return r.text(); })
      .then(function (html) { report.innerHTML = html; })
      .catch(function (e) { say("could not load the report: " + e, "error"); });
  }

  function follow(jobId, dryRun) {
    if (source) { source.close(); }
    source = new EventSource("/api/v1/jobs/" + encodeURIComponent(jobId) + "/events");
    source.addEventListener("progress", function (ev) {
      var e = JSON.parse(ev.data);
      var d = e.data || {};
      if (d.policy !== undefined || (e.step || "").indexOf("policy:") === 0) {
        var li = document.createElement("li");
        li.textContent = e.step + (d.value !== undefined && d.value !== null ? " (" + d.value + ")" : "");
        steps.appendChild(li);
      } else {
        plot(d);
      }
      say((dryRun ? "checking: " : "migrating: ") + e.step);
    });
    source.addEventListener("end", function (ev) {
      source.close(); source = null;
      var job = JSON.parse(ev.data);
      var why = !job.error ? "" : (job.error.report ? " (the report below says why)" : ": " + job.error.error);
      say("job " + job.id + " " + job.state + why, job.state === "succeeded" ? "ok" : "error");
      finish(job.id);
    });
    source.onerror = function () { if (!running && source) { source.close(); } };
  }

  function run(dryRun) {
    if (running) { return; }
    var body = {
      vm: dialog.dataset.vm, from: dialog.dataset.host, to: form.elements.to.value,
      persistent: form.elements.persistent.checked, undefine_source: form.elements.undefine_source.checked,
      max_downtime_ms: parseInt(form.elements.max_downtime_ms.value, 10) || 300, dry_run: dryRun,
    };
    var mode = form.elements.mode.value;
    if (mode !== "auto") { body.live = mode === "live"; }
    if (!dryRun && !window.confirm("Migrate " + body.vm + " from " + body.from + " to " + body.to + "?")) { return; }
    running = true;
    report.textContent = "";
    steps.textContent = "";
    if (dryRun) { chartBox.textContent = ""; if (chart) { chart.destroy(); chart = null; } } else { newChart(); }
    say(dryRun ? "checking…" : "starting…");
    fetch("/api/v1/migrations", {method: "POST", body: JSON.stringify(body),
                                 headers: {"Content-Type": "application/json", "X-Requested-With": "vpd"}})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] !== 202) {
          running = false;
          say(res[1].error + (res[1].hint ? " (hint: " + res[1].hint + ")" : ""), "error");
          return;
        }
        say("job " + res[1].job + " " + res[1].state);
        follow(res[1].job, dryRun);
      })
      .catch(function (e) { running = false; say("request failed: " + e, "error"); });
  }

  form.addEventListener("click", function (ev) {
    var what = ev.target.dataset && ev.target.dataset.run;
    if (what === "check") { run(true); }
    else if (what === "migrate") { run(false); }
    else if (what === "close") { dialog.close(); }
  });
})();
