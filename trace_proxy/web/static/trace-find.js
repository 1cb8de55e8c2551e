// Find in trace: spans whose service, operation or a tag value holds the typed text are
// highlighted as you type (the form's ?find= does the same on the server without script).
const table = document.querySelector(".waterfall[data-trace-id]");
const box = document.querySelector("[data-find]");
const count = document.querySelector("[data-found]");

if (table && box) {
  const rows = [...table.querySelectorAll(".span[data-find]")];
  const run = () => {
    const needle = box.value.trim().toLowerCase();
    let found = 0;
    for (const row of rows) {
      const hit = needle !== "" && row.dataset.find.includes(needle);
      row.classList.toggle("match", hit);
      found += hit;
    }
    count.textContent = needle ? `${found} of ${rows.length} spans match` : "";
    return rows.find((row) => row.classList.contains("match"));
  };
  box.addEventListener("input", run);
  box.form.addEventListener("submit", (event) => {
    event.preventDefault();
    run()?.scrollIntoView({ block: "center" });
  });
  for (const button of box.form.querySelectorAll(".nojs")) button.hidden = true;
}
