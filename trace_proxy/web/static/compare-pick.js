// Compare from the search list: the button works once exactly two traces are ticked.
const form = document.querySelector("form[data-compare]");

if (form) {
  const button = form.querySelector("[data-compare-button]");
  const update = () => {
    const ticked = form.querySelectorAll("input[name=trace]:checked").length;
    button.disabled = ticked !== 2;
    button.textContent = ticked === 2 ? "Compare the two ticked" : `Compare: tick two traces (${ticked} ticked)`;
  };
  form.addEventListener("change", update);
  update();
}
