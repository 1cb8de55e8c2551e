// Sortable tables: a heading's button sorts by its column (numbers by their data-value),
// again for the other direction. Tables replaced later (the live search list) get them too.
function enhance(table) {
  const body = table.tBodies[0];
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((head, column) => {
    if (!head.dataset.sort || head.querySelector("button.sort")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.append(...head.childNodes);
    head.append(button);
    button.addEventListener("click", () => {
      const descending = head.getAttribute("aria-sort") !== "descending";
      const numeric = head.dataset.sort === "num";
      const key = (row) => {
        const cell = row.cells[column];
        return numeric ? Number(cell.dataset.value ?? cell.textContent) : cell.textContent.trim();
      };
      const rows = [...body.rows].sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        const order = numeric ? x - y : x.localeCompare(y);
        return descending ? -order : order;
      });
      for (const other of heads) other.removeAttribute("aria-sort");
      head.setAttribute("aria-sort", descending ? "descending" : "ascending");
      body.append(...rows);
    });
  });
}

const enhanceAll = () => document.querySelectorAll("table.sortable").forEach(enhance);
enhanceAll();
document.addEventListener("results-replaced", enhanceAll);
