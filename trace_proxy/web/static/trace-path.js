// The critical path only: hides every span not on it (rows carry data-critical-path).
const table = document.querySelector(".waterfall[data-trace-id]");
const only = document.querySelector("[data-critical-only]");

if (table && only) {
  only.closest("label").hidden = false;
  // A group of rows with none on the path goes too (groups keep their size while off screen).
  const groups = [...table.querySelectorAll(".rows")].filter((group) => !group.querySelector("[data-critical-path]"));
  only.addEventListener("change", () => {
    table.classList.toggle("critical-only", only.checked);
    for (const group of groups) group.classList.toggle("off-path", only.checked);
  });
}
