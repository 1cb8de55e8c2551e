// Dark or light: the system's choice (prefers-color-scheme) until the header's button picks
// one, which this browser then remembers.
const root = document.documentElement;
const button = document.querySelector("[data-theme-toggle]");
const system = matchMedia("(prefers-color-scheme: dark)");
const saved = localStorage.getItem("theme");
if (saved === "dark" || saved === "light") root.dataset.theme = saved;

const dark = () => (root.dataset.theme ? root.dataset.theme === "dark" : system.matches);
const show = () => {
  button.setAttribute("aria-pressed", String(dark()));
  button.textContent = dark() ? "☾ dark" : "☀ light";
  button.title = "dark mode (remembered in this browser)";
};

if (button) {
  button.hidden = false;
  button.setAttribute("aria-label", "dark mode");
  show();
  button.addEventListener("click", () => {
    root.dataset.theme = dark() ? "light" : "dark";
    localStorage.setItem("theme", root.dataset.theme);
    show();
  });
  system.addEventListener("change", show);
}
