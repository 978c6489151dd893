// A select marked data-submit sends its form when it changes (the runs page's status
// filter; without JavaScript its button does). Here, not inline: the page's
// Content-Security-Policy runs no inline script.
// A filter left at "any" stays out of the address, so a filtered page's URL says only what
// it is narrowed to.
document.querySelectorAll("select[data-submit]").forEach((el) => {
  el.addEventListener("change", () => {
    if (el.form.method === "get") {
      el.form.querySelectorAll("select[name], input[name]").forEach((f) => { f.disabled = !f.value; });
    }
    el.form.submit();
  });
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

// Keyboard shortcuts for the requests on a page: j/k select the next/previous one, a
// approves it, r puts the cursor in its reject reason (a rejection says why; Enter sends
// it), o opens its run. Each key only presses the card's own button or field, so a
// decision goes through the same form, and the same checks, as a click. Keys typed into a
// field are the field's.
(function () {
  "use strict";
  const cards = Array.from(document.querySelectorAll("article.approval"));
  if (!cards.length) return;
  let at = -1;
  function select(index) {
    if (at >= 0) cards[at].classList.remove("selected");
    at = Math.max(0, Math.min(cards.length - 1, index));
    cards[at].classList.add("selected");
    cards[at].focus({ preventScroll: true });
    cards[at].scrollIntoView({ block: "nearest" });
  }
  const wanted = cards.findIndex((c) => window.location.hash === "#" + c.id);
  if (wanted >= 0) select(wanted);
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.closest("input, textarea, select") || target.isContentEditable)) return;
    const card = () => cards[at >= 0 ? at : 0];
    if (event.key === "j") { select(at + 1); }
    else if (event.key === "k") { select(at < 0 ? 0 : at - 1); }
    else if (event.key === "a") {
      const approve = card().querySelector("form.approve button[type=submit]");
      if (!approve) return;
      if (at < 0) select(0);
      approve.click();
    } else if (event.key === "r") {
      const reason = card().querySelector("form.reject input[name=reason]");
      if (!reason) return;
      if (at < 0) select(0);
      reason.focus();
    } else if (event.key === "o") {
      const run = card().querySelector("a[href^='/ui/runs/']");
      if (run) window.location.href = run.href;
    } else { return; }
    event.preventDefault();
  });
})();

// A run that is not over shows live on its page, from its event stream (server-sent
// events, pushed as the run goes when this server drives it): each step is added to the
// list as it happens and the model's words as it writes them. When the run's status
// changes the page is drawn again (its requests, its trace), unless the person is typing.
(function () {
  "use strict";
  const page = document.querySelector("[data-events]");
  const feed = document.getElementById("live-feed");
  if (!page || !feed || !window.EventSource) return;
  const drawn = Number(page.dataset.logged); // log entries the page was drawn with
  const logKinds = ["plan", "policy", "policy_changed", "approval", "observation", "finish"];
  const liveKinds = ["tool_call", "tool_result", "gate", "budget_warning", "custom"];
  const typing = () => Array.from(document.querySelectorAll("main input:not([type=hidden]), main textarea"))
    .some((el) => el === document.activeElement || (el.value !== el.defaultValue));
  const source = new EventSource(page.dataset.events);
  let words = null;
  function add(kind, line) {
    const item = document.createElement("li");
    item.className = "step live t-" + kind;
    item.textContent = line;
    feed.append(item);
    feed.hidden = false;
    return item;
  }
  logKinds.forEach((kind) => source.addEventListener(kind, (message) => {
    if (Number(message.lastEventId) < drawn) return; // on the page already
    words = null;
    add(kind, JSON.parse(message.data).line);
  }));
  liveKinds.forEach((kind) => source.addEventListener(kind, (message) => {
    words = null;
    add(kind, JSON.parse(message.data).line);
  }));
  source.addEventListener("token", (message) => {
    if (!words) words = add("token", "");
    words.textContent += JSON.parse(message.data).data.text;
  });
  source.addEventListener("status", (message) => {
    const status = JSON.parse(message.data).status;
    if (status === page.dataset.status) return;
    page.dataset.status = status;
    const shown = document.getElementById("run-status");
    if (status === "running" || status === "pending") { // the feed shows it: no redraw
      shown.textContent = status;
      shown.className = "status s-" + status;
      return;
    }
    if (typing()) { document.querySelector(".live").hidden = false; return; }
    source.close();
    window.location.reload();
  });
})();
