// The critical path only: hides every span not on it (rows carry data-critical-path).
const table = document.querySelector(".waterfall[data-trace-id]");
const only = document.querySelector("[data-critical-only]");

if (table && only) {
  only.closest("label").hidden = false;
  only.addEventListener("change", () => table.classList.toggle("critical-only", only.checked));
}
