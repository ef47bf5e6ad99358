// The try page: uploads one photo to /api/try/restore, boxes the detected faces, fills the slider.
"use strict";
const form = document.getElementById("try-form");
const weight = document.getElementById("weight");
weight.addEventListener("input", () => { document.getElementById("weight-value").textContent = Number(weight.value).toFixed(2); });
let objectUrls = [];

function showFaces(result, sourceUrl) {
  const boxed = document.getElementById("boxed");
  boxed.querySelectorAll(".face-box").forEach((node) => node.remove());
  document.getElementById("boxed-image").src = sourceUrl;
  for (const box of result.boxes) {
    const style = `left: ${(100 * box.left) / result.input_width}%; top: ${(100 * box.top) / result.input_height}%;`
      + ` width: ${(100 * (box.right - box.left)) / result.input_width}%; height: ${(100 * (box.bottom - box.top)) / result.input_height}%`;
    boxed.append(el("div", { class: "face-box", style, title: `score ${box.score.toFixed(2)}` }));
  }
  document.getElementById("face-count").textContent = String(result.faces);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("photo").files[0];
  const status = document.getElementById("try-status"), problem = document.getElementById("try-error");
  if (!file) return;
  problem.hidden = true;
  status.textContent = "restoring…";
  const data = new FormData();
  data.append("photo", file);
  data.append("weight", weight.value);
  data.append("upscale", document.getElementById("upscale").value);
  try {
    const result = await api("/api/try/restore", { method: "POST", body: data });
    objectUrls.forEach((url) => URL.revokeObjectURL(url));
    const bytes = Uint8Array.from(atob(result.image_base64), (c) => c.charCodeAt(0));
    const restoredUrl = URL.createObjectURL(new Blob([bytes], { type: result.media_type }));
    const sourceUrl = URL.createObjectURL(file);
    objectUrls = [restoredUrl, sourceUrl];
    showFaces(result, sourceUrl);
    const figure = document.querySelector("#try-result [data-compare]");
    figure.querySelector(".compare-after").src = restoredUrl;
    figure.querySelector(".compare-before").src = sourceUrl;
    const download = document.getElementById("download");
    download.href = restoredUrl;
    download.download = `${file.name.replace(/\.[^.]*$/, "")}_restored.${result.ext}`;
    document.getElementById("try-facts").textContent =
      `${result.width}×${result.height}, ${result.faces} faces, ${result.seconds.toFixed(2)} s, model ${result.model_version}`;
    document.getElementById("try-result").hidden = false;
    status.textContent = "done";
  } catch (error) {
    status.textContent = "";
    problem.textContent = error.message;
    problem.hidden = false;
  }
});
