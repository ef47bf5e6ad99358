// Before/after slider: the "before" image lies on top of the "after" one, clipped at the range's value.
"use strict";
function setupCompare(figure) {
  const range = figure.querySelector(".compare-range");
  const before = figure.querySelector(".compare-before");
  const line = figure.querySelector(".compare-line");
  const update = () => {
    before.style.clipPath = `inset(0 ${100 - Number(range.value)}% 0 0)`;
    line.style.left = `${range.value}%`;
  };
  range.addEventListener("input", update);
  update();
}
document.querySelectorAll("[data-compare]").forEach(setupCompare);
