// Select a region of the heatmap: drag from one cell to another (a plain click still opens
// the cell's traces). The selection's time and duration ranges become two links: BubbleUp
// (what sets its spans apart) and its traces.
const table = document.querySelector("table.heatmap");
const bar = document.querySelector("[data-selection]");

if (table && bar) {
  const cells = [...table.tBodies[0].querySelectorAll("td[data-t0]")];
  const place = (cell) => [cell.parentElement.rowIndex, cell.cellIndex];
  let start = null;
  let dragged = false;

  const region = (a, b) => {
    const [[r1, c1], [r2, c2]] = [place(a), place(b)];
    return cells.filter((cell) => {
      const [r, c] = place(cell);
      return r >= Math.min(r1, r2) && r <= Math.max(r1, r2) && c >= Math.min(c1, c2) && c <= Math.max(c1, c2);
    });
  };
  const mark = (chosen) => {
    for (const cell of cells) cell.classList.toggle("chosen", chosen.includes(cell));
  };
  const show = (chosen) => {
    const number = (name) => chosen.map((cell) => Number(cell.dataset[name]));
    const range = { t0: Math.min(...number("t0")), t1: Math.max(...number("t1")),
                    min_ms: Math.min(...number("min")), max_ms: Math.max(...number("max")) };
    const spans = number("count").reduce((a, b) => a + b, 0);
    const common = new URLSearchParams({ service: table.dataset.service });
    const bubble = new URLSearchParams(common);
    for (const [key, value] of Object.entries(range)) bubble.set(key, value);
    bubble.set("lookback", table.dataset.lookback);
    const traces = new URLSearchParams(common);
    traces.set("min_ms", range.min_ms);
    traces.set("max_ms", range.max_ms);
    traces.set("end", range.t1);
    traces.set("lookback", range.t1 - range.t0);
    traces.set("limit", 100);
    const clock = (ms) => new Date(ms).toTimeString().slice(0, 8);
    bar.querySelector("[data-selection-text]").textContent =
      `Selected ${spans} spans: ${range.min_ms}–${range.max_ms} ms, ${clock(range.t0)}–${clock(range.t1)}.`;
    bar.querySelector("[data-bubbleup]").href = `/bubbleup?${bubble}`;
    bar.querySelector("[data-selection-traces]").href = `/?${traces}`;
    bar.hidden = false;
  };

  table.addEventListener("pointerdown", (event) => {
    start = event.target.closest("td[data-t0]");
    dragged = false;
  });
  table.addEventListener("pointerover", (event) => {
    const cell = event.target.closest("td[data-t0]");
    if (!start || !cell) return;
    dragged = dragged || cell !== start;
    if (dragged) mark(region(start, cell));
  });
  document.addEventListener("pointerup", (event) => {
    const cell = event.target.closest && event.target.closest("td[data-t0]");
    if (start && dragged && cell) show(region(start, cell));
    start = null;
  });
  table.addEventListener("click", (event) => {
    if (dragged) event.preventDefault();  // the end of a drag, not a click on the cell's link
  });
}
