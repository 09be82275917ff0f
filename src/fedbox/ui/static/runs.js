// The runs page: draws a run's rounds and metrics, then follows it live over
// server-sent events (/runs/NAME/events) until the run ends.
(function () {
  "use strict";
  const style = getComputedStyle(document.documentElement);
  const css = (name) => style.getPropertyValue(name).trim();
  Chart.defaults.color = css("--muted");
  Chart.defaults.borderColor = css("--line");
  Chart.defaults.font.family = css("--font");
  const palette = [css("--accent"), css("--bad"), css("--warn"), css("--good"), "#8e6cd8", "#d86cb5"];
  const charts = new Map();

  function chartFor(key, title, series, counts) {
    if (charts.has(key)) return charts.get(key);
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.metric = key;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title + " per round");
    figure.append(caption, canvas);
    document.getElementById("charts").append(figure);
    const chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: series.map((name, i) => ({
          label: name, data: [], borderColor: palette[i % palette.length],
          backgroundColor: palette[i % palette.length], tension: 0.2, pointRadius: 3,
        })),
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: "round" } },
          y: counts ? { beginAtZero: true, ticks: { precision: 0 } } : {},
        },
        plugins: { legend: { display: series.length > 1 } },
      },
    });
    charts.set(key, chart);
    return chart;
  }

  function cell(row, text, numeric) {
    const td = row.insertCell();
    td.textContent = text;
    if (numeric) td.className = "num";
  }

  function draw(run) {
    // messages outside any round (a query before the first) have no place on an axis
    const rounds = run.rounds.filter((r) => r.round !== "");
    const labels = rounds.map((r) => r.round);
    run.metrics.forEach((name, i) => {
      const chart = chartFor("metric:" + name, name, [name], false);
      chart.canvas.parentElement.style.order = i + 1; // sorted, whenever each appeared

      chart.data.labels = labels;
      chart.data.datasets[0].data = rounds.map((r) => (name in r.metrics ? r.metrics[name] : null));
      chart.update();
    });
    if (rounds.length) {
      const counts = ["replies", "errors", "timeouts"];
      const chart = chartFor("counts", "replies, errors and timeouts", counts, true);
      chart.data.labels = labels;
      counts.forEach((c, i) => { chart.data.datasets[i].data = rounds.map((r) => r[c]); });
      chart.update();
    }
    document.getElementById("no-metrics").hidden = run.metrics.length > 0;
    const body = document.querySelector("#rounds tbody");
    body.replaceChildren();
    for (const r of run.rounds) {
      const row = body.insertRow();
      for (const c of ["round", "sent", "replies", "errors", "timeouts"]) cell(row, r[c], true);
      cell(row, Object.entries(r.metrics).map(([k, v]) => k + " " + (+v).toPrecision(4)).join(", "));
    }
    const status = document.getElementById("run-status");
    status.textContent = run.summary.status;
    status.className = "badge " + run.summary.status;
  }

  const status = () => document.getElementById("run-status").textContent;
  const initial = JSON.parse(document.getElementById("run-data").textContent);
  draw(initial);
  const live = document.getElementById("live");
  if (initial.summary.status !== "running") {
    live.textContent = initial.summary.status;
    return;
  }
  live.textContent = "live";
  const events = new EventSource(location.pathname.replace(/\/$/, "") + "/events");
  events.onmessage = (e) => draw(JSON.parse(e.data));
  events.addEventListener("end", () => { events.close(); live.textContent = status(); });
  events.onerror = () => { live.textContent = "reconnecting…"; };
  events.onopen = () => { live.textContent = "live"; };
})();
