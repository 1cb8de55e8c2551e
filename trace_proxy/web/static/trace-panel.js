// The span panel without a reload: a click on a span's row (or its link) fetches the panel
// the server renders for /trace/ID?span=SPAN and keeps the address in step with it, so the
// address bar always holds the selected span's link. Without script the link does the same
// with a page load.
const table = document.querySelector(".waterfall[data-trace-id]");
const panel = document.querySelector("[data-panel]");

function mark(id) {
  for (const row of table.querySelectorAll(".span[aria-current]")) {
    row.classList.remove("selected");
    row.removeAttribute("aria-current");
  }
  const row = id && table.querySelector(`.span[data-span-id="${CSS.escape(id)}"]`);
  if (row) {
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
  }
}

function address(id) {
  const url = new URL(location.href);
  if (id) url.searchParams.set("span", id); else url.searchParams.delete("span");
  url.hash = "";
  history.replaceState(null, "", url);
}

async function select(id) {
  // An uploaded file's trace is not stored: its panels came with the page.
  const inline = document.querySelector(`template[data-panel-for="${CSS.escape(id)}"]`);
  if (inline) {
    panel.replaceChildren(inline.content.cloneNode(true));
  } else {
    const url = `/trace/${encodeURIComponent(table.dataset.traceId)}/panel?span=${encodeURIComponent(id)}`;
    const reply = await fetch(url);
    if (!reply.ok) return;
    panel.innerHTML = await reply.text();  // the server's template: every value escaped there
    address(id);
  }
  panel.hidden = false;
  mark(id);
}

function close() {
  panel.hidden = true;
  panel.replaceChildren();
  mark(null);
  if (new URL(location.href).searchParams.has("span")) address(null);
}

if (table && panel) {
  table.addEventListener("click", (event) => {
    if (event.target.closest("button") || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const row = event.target.closest(".span[data-span-id]");
    if (!row) return;
    event.preventDefault();
    select(row.dataset.spanId);
  });
  panel.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]")) {
      event.preventDefault();
      close();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden && !document.querySelector("dialog[open]")) close();
  });
  const chosen = table.querySelector(".span.selected");
  if (chosen) {
    chosen.setAttribute("aria-current", "true");
    chosen.scrollIntoView({ block: "nearest" });
  }
}
