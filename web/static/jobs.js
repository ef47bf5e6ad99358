// The jobs page: renders /api/jobs into the table and refreshes it every 2 seconds.
"use strict";
const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
function jobRow(job) {
  const link = el("a", { href: `/jobs/${job.id}` }, String(job.id));
  const cells = [
    el("td", {}, link),
    el("td", {}, el("a", { href: `/jobs/${job.id}` }, job.name)),
    el("td", {}, el("span", { class: `state state-${job.state}` }, job.state)),
    el("td", {}, progressBar(job.progress)),
    ...STATES.map((s) => el("td", { class: `state-${s}`, "data-count": s }, String(job.counts[s]))),
    el("td", {}, formatRate(job.items_per_second)),
    el("td", {}, job.done ? "done" : formatDuration(job.eta_seconds)),
    el("td", {}, job.created_at ? new Date(job.created_at).toLocaleString() : "–"),
  ];
  return el("tr", { "data-job-id": String(job.id) }, ...cells);
}
function renderJobs(jobs) {
  document.querySelector("#jobs tbody").replaceChildren(...jobs.map(jobRow));
  document.getElementById("no-jobs").hidden = jobs.length > 0;
}
renderJobs(readJson("initial-jobs"));
poll(async () => renderJobs(await api("/api/jobs")), 2000);

document.getElementById("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target), out = document.getElementById("submit-result");
  const body = { source: form.get("source"), dest: form.get("dest"), upscale: Number(form.get("upscale")) };
  if (form.get("name")) body.name = form.get("name");
  if (form.get("weight") !== "") body.weight = Number(form.get("weight"));
  out.textContent = "listing the source…";
  try {
    const result = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    out.textContent = `job ${result.id}: ${result.listed} listed, ${result.new_items} new, ${result.dispatched} sent to workers`;
    renderJobs(await api("/api/jobs"));
  } catch (error) { out.textContent = error.message; out.className = "error"; }
});
