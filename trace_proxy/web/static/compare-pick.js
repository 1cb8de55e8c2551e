// Compare from the search list: the button works once exactly two traces are ticked.
function update() {
  const form = document.querySelector("form[data-compare]");
  if (!form) return;
  const button = form.querySelector("[data-compare-button]");
  const ticked = form.querySelectorAll("input[name=trace]:checked").length;
  button.disabled = ticked !== 2;
  button.textContent = ticked === 2 ? "Compare the two ticked" : `Compare: tick two traces (${ticked} ticked)`;
}

document.addEventListener("change", (event) => {
  if (event.target.name === "trace") update();
});
document.addEventListener("results-replaced", update);
update();
