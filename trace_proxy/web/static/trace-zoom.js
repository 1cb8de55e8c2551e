// The minimap and the time ruler: every span as a thin line of one SVG above the waterfall;
// drag across it to zoom the waterfall into that window (double-click for the whole
// trace). Zooming sets two variables on the waterfall that scale every lane at once.
const table = document.querySelector(".waterfall[data-trace-id]");
const minimap = document.querySelector("[data-minimap]");
const SVG = "http://www.w3.org/2000/svg";

const ms = (us) => { const v = us / 1000; return v < 1000 ? v.toFixed(1) : Math.round(v).toLocaleString("en"); };

function element(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

if (table && minimap) {
  const total = Number(table.dataset.durationUs);
  const rows = [...table.querySelectorAll(".span[data-span-id]")];
  const ticks = [...table.querySelectorAll("[data-ruler] > span")];
  const map = element("svg", { viewBox: `0 0 1000 ${rows.length}`, preserveAspectRatio: "none",
                               role: "img", "aria-label": "minimap of the trace: drag to zoom" });
  // One path per colour, not a node per span: a 1,000-span trace's minimap is three elements.
  const lines = { plain: [], error: [], slowest: [] };
  rows.forEach((row, i) => {
    const place = row.querySelector("i.b").className;  // "b x123 w45": per mille of the trace
    const kind = row.classList.contains("error") ? "error" : row.classList.contains("slowest") ? "slowest" : "plain";
    const x = place.match(/\bx(\d+)/)[1];
    const width = place.match(/\bw(\d+)/)[1];
    lines[kind].push(`M${x} ${i}h${width}v0.8h-${width}z`);
  });
  for (const [kind, parts] of Object.entries(lines)) {
    if (parts.length) map.append(element("path", { d: parts.join(""), class: kind }));
  }
  const lens = element("rect", { class: "lens", x: 0, y: 0, width: 1000, height: rows.length });
  map.append(lens);
  minimap.append(map);
  minimap.hidden = false;

  const zoom = (a, b) => {
    table.style.setProperty("--zoom", String(1 / (b - a)));
    table.style.setProperty("--shift", `${(-a * 100).toFixed(3)}%`);
    ticks.forEach((tick, i) => { tick.textContent = `${ms(total * (a + (b - a) * i / (ticks.length - 1)))} ms`; });
    lens.setAttribute("x", a * 1000);
    lens.setAttribute("width", (b - a) * 1000);
    table.dataset.window = `${a.toFixed(4)},${b.toFixed(4)}`;
  };
  const share = (event) => {
    const box = map.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  };
  let from = null;
  map.addEventListener("pointerdown", (event) => { from = share(event); map.setPointerCapture(event.pointerId); });
  map.addEventListener("pointermove", (event) => {
    if (from === null) return;
    const to = share(event);
    lens.setAttribute("x", Math.min(from, to) * 1000);
    lens.setAttribute("width", Math.abs(to - from) * 1000);
  });
  map.addEventListener("pointerup", (event) => {
    const to = share(event);
    const [a, b] = [Math.min(from, to), Math.max(from, to)];
    from = null;
    if (b - a > 0.002) zoom(a, b);
  });
  map.addEventListener("dblclick", () => zoom(0, 1));
}
