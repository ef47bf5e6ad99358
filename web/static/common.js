// Helpers shared by the pages: API calls (the token cookie rides along) and number formatting.
"use strict";
async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}
function formatRate(perSecond) {
  if (perSecond === null || perSecond === undefined) return "–";
  if (perSecond >= 1) return `${perSecond.toFixed(1)} items/s`;
  return `${(perSecond * 60).toFixed(1)} items/min`;
}
function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds <= 0) return "done";
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.round(seconds % 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
function progressBar(fraction) {
  const pct = Math.round(fraction * 1000) / 10;
  return el("div", { class: "bar", role: "progressbar", "aria-valuenow": String(pct), "aria-valuemin": "0", "aria-valuemax": "100" },
    el("div", { class: "fill", style: `width: ${pct}%` }), el("span", { class: "label" }, `${pct}%`));
}
function readJson(id) { return JSON.parse(document.getElementById(id).textContent); }
function poll(fn, ms) {
  const status = document.getElementById("live-status");
  const tick = async () => {
    try { await fn(); if (status) { status.textContent = "live"; status.classList.remove("stale"); } }
    catch (error) { if (status) { status.textContent = `not updating: ${error.message}`; status.classList.add("stale"); } }
    setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}
