// The job page: keeps the header (progress, counts, throughput, ETA) live; cancel and retry buttons.
"use strict";
const header = document.getElementById("job-header");
const jobId = header.dataset.jobId;
function renderJob(job) {
  document.getElementById("job-progress").style.width = `${(job.progress * 100).toFixed(1)}%`;
  document.getElementById("job-finished").textContent = job.finished;
  document.getElementById("job-total").textContent = job.total;
  document.getElementById("job-rate").textContent = formatRate(job.items_per_second);
  document.getElementById("job-eta").textContent = job.done ? "done" : formatDuration(job.eta_seconds);
  const state = document.getElementById("job-state");
  state.textContent = job.state; state.className = `state state-${job.state}`;
  for (const node of document.querySelectorAll("[data-count]")) node.textContent = job.counts[node.dataset.count];
}
renderJob(readJson("initial-job"));
poll(async () => renderJob(await api(`/api/jobs/${jobId}`)), 2000);

for (const button of header.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", async () => {
    const out = document.getElementById("action-result");
    const query = button.dataset.failedOnly ? "?failed_only=true" : "";
    try {
      const result = await api(`/api/jobs/${jobId}/${button.dataset.action}${query}`, { method: "POST" });
      out.textContent = button.dataset.action === "cancel"
        ? `${result.cancelled} queued items cancelled`
        : `${result.requeued} items queued again, ${result.dispatched} sent to workers`;
      out.className = "";
      renderJob(await api(`/api/jobs/${jobId}`));
    } catch (error) { out.textContent = error.message; out.className = "error"; }
  });
}
