// Live: while ticked, the list (and its scatter plot) is fetched again every 2 s, so traces
// appear as they arrive (say while `inv load` runs); new rows are marked, ticks are kept.
const box = document.querySelector("[data-live]");
const results = document.querySelector("[data-results]");
const EVERY_MS = 2000;

async function refresh() {
  const reply = await fetch(location.href);
  if (!reply.ok) return;
  const page = new DOMParser().parseFromString(await reply.text(), "text/html");
  const fresh = page.querySelector("[data-results]");
  if (!fresh || !box.checked) return;
  const known = new Set([...results.querySelectorAll("tr[data-trace-id]")].map((row) => row.dataset.traceId));
  const ticked = new Set([...results.querySelectorAll("input[name=trace]:checked")].map((input) => input.value));
  for (const row of fresh.querySelectorAll("tr[data-trace-id]")) {
    if (!known.has(row.dataset.traceId)) row.classList.add("new");
  }
  for (const input of fresh.querySelectorAll("input[name=trace]")) input.checked = ticked.has(input.value);
  results.replaceChildren(...fresh.childNodes);
  document.dispatchEvent(new Event("results-replaced"));
}

if (box && results) {
  let timer = null;
  box.closest("label").hidden = false;
  box.addEventListener("change", () => {
    clearInterval(timer);
    timer = box.checked ? setInterval(refresh, EVERY_MS) : null;
    if (box.checked) refresh();
  });
}
