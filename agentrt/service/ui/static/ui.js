// A select marked data-submit sends its form when it changes (the runs page's status
// filter; without JavaScript its button does). Here, not inline: the page's
// Content-Security-Policy runs no inline script.
document.querySelectorAll("select[data-submit]").forEach((el) => {
  el.addEventListener("change", () => el.form.submit());
});

// The run page follows its run: it polls a small state endpoint and reloads when the run
// moves, unless the person is typing in a form (then it only says that the run moved).
(function () {
  "use strict";
  const page = document.querySelector("[data-follow]");
  if (!page) return;
  const url = page.dataset.follow;
  const seen = page.dataset.version;
  const typing = () => Array.from(document.querySelectorAll("main input:not([type=hidden]), main textarea"))
    .some((el) => el === document.activeElement || (el.value !== el.defaultValue));
  async function look() {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.redirected || !answer.ok) return; // signed out or gone: leave the page as it is
      const run = await answer.json();
      if (run.version !== seen) {
        if (typing()) { document.querySelector(".live").hidden = false; return; }
        window.location.reload();
        return;
      }
    } catch (e) { /* the server is restarting: look again */ }
    setTimeout(look, 1000);
  }
  setTimeout(look, 1000);
})();
