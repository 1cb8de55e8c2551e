// Collapse and expand subtrees of the waterfall: a toggle on every span with children, and
// "collapse below depth N" for all at once. Rows are in tree order (depth first), so a
// subtree is the run of rows deeper than its root that follows it.
const table = document.querySelector(".waterfall[data-trace-id]");

if (table) {
  const rows = [...table.querySelectorAll(".span[data-span-id]")];
  const depths = rows.map((row) => Number(row.dataset.depth));
  const collapsed = new Set();
  const toggles = new Map();

  // Rows come in groups that keep their last size while off screen (ui.css): a group left
  // with no row to show is hidden too, so the page shrinks at once, not group by group.
  const groups = [...table.querySelectorAll(".rows")];

  const apply = () => {
    let inside = Infinity;  // depth of the collapsed span whose subtree we are in
    rows.forEach((row, i) => {
      if (depths[i] <= inside) inside = Infinity;
      row.hidden = inside !== Infinity;
      if (!row.hidden && collapsed.has(i)) inside = depths[i];
      const toggle = toggles.get(i);
      if (toggle) {
        const open = !collapsed.has(i);
        toggle.setAttribute("aria-expanded", String(open));  // the stylesheet draws ▾ or ▸ from it
        row.classList.toggle("collapsed", !open);
      }
    });
    for (const group of groups) group.hidden = [...group.children].every((row) => row.hidden);
  };

  rows.forEach((row, i) => {
    const children = Number(row.dataset.children);
    if (!children) return;
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "twisty";
    toggle.setAttribute("aria-label", `${children} child spans: collapse or expand`);
    toggle.setAttribute("aria-expanded", "true");
    toggle.addEventListener("click", () => {
      if (collapsed.has(i)) collapsed.delete(i); else collapsed.add(i);
      apply();
    });
    row.querySelector(".service").prepend(toggle);
    toggles.set(i, toggle);
  });

  const depth = document.querySelector("[data-depth]");
  if (depth) {
    depth.closest("label").hidden = false;
    depth.addEventListener("change", () => {
      collapsed.clear();
      if (depth.value !== "") {
        rows.forEach((row, i) => {
          if (depths[i] >= Number(depth.value) && toggles.has(i)) collapsed.add(i);
        });
      }
      apply();
    });
  }
}
