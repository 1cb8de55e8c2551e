// Sortable tables: a heading's button sorts by its column (numbers by their data-value),
// again for the other direction.
for (const table of document.querySelectorAll("table.sortable")) {
  const body = table.tBodies[0];
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((head, column) => {
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
