// Keys: j / k next and previous span (or trace in a list), Enter opens it (the focused
// link), Esc closes, / to the search box, ? lists them.
const dialog = document.querySelector("[data-keys]");
const ROWS = ".waterfall .span, table.traces tbody tr";

function move(step) {
  const rows = [...document.querySelectorAll(ROWS)].filter((row) => row.offsetParent !== null);
  if (!rows.length) return;
  const at = rows.findIndex((row) => row.contains(document.activeElement));
  const next = at < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, at + step));
  rows[next].querySelector("a")?.focus();
  rows[next].scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, select, textarea")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "?") {
    if (dialog.open) dialog.close(); else dialog.showModal();
  } else if (event.key === "/") {
    const box = document.querySelector("[data-find]") || document.querySelector(".jump input");
    box.focus();
    box.select();
  } else if (event.key === "j" || event.key === "k") {
    move(event.key === "j" ? 1 : -1);
  } else {
    return;
  }
  event.preventDefault();
});
