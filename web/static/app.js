// Page behaviour that needs no framework: CSRF header for htmx calls, the
// Run buttons of lesson code blocks, the lesson text's scroll position, and
// the lesson page's layout (the split between text and lab, and the
// Lesson | Lab switch of narrow screens).
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRF-Token"] = csrfToken();
});

// A Run button types its command into the lab terminal once a lab is
// running (the terminal registers `window.layerlab.typeIntoTerminal`);
// until then it copies the command.
window.layerlab = window.layerlab ?? {};
window.layerlab.csrfToken = csrfToken;

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest(".run-button");
  if (!button) return;
  const command = button.dataset.command ?? "";
  if (typeof window.layerlab.typeIntoTerminal === "function") {
    // On a narrow screen the terminal may be out of view: bring it first.
    window.layerlab.showLab?.();
    window.layerlab.typeIntoTerminal(command);
    return;
  }
  const ok = await copyText(command);
  const label = button.textContent;
  button.textContent = ok ? "Copied" : "Copy failed";
  button.classList.add("done");
  setTimeout(() => {
    button.textContent = label;
    button.classList.remove("done");
  }, 1500);
});

// The lesson text scrolls in a column of its own, whose position browsers
// do not restore on a reload: keep it per page for the tab's session.
const lessonText = document.getElementById("lesson");
if (lessonText) {
  const key = `layerlab:scroll:${location.pathname}`;
  const saved = Number(sessionStorage.getItem(key));
  let scrolled = false;
  const restore = () => {
    if (saved && !scrolled) lessonText.scrollTop = saved;
  };
  restore();
  // Images above the place may load later and push it down.
  window.addEventListener("load", restore, { once: true });
  let queued = false;
  lessonText.addEventListener(
    "scroll",
    () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        scrolled = lessonText.scrollTop !== saved;
        sessionStorage.setItem(key, String(lessonText.scrollTop));
      });
    },
    { passive: true },
  );
}

// An author's server (`serve --watch`) reloads the course when its files
// change; the page follows.
const courseWatch = document.getElementById("course-watch");
if (courseWatch) {
  const seen = courseWatch.dataset.version;
  setInterval(async () => {
    try {
      const res = await fetch("/api/course/version");
      if (res.ok && String((await res.json()).version) !== seen) location.reload();
    } catch {
      // The server is restarting; the next poll tries again.
    }
  }, 1000);
}

// Times are sent in UTC to the second; show them in the viewer's zone,
// with the UTC text kept as the tooltip.
for (const time of document.querySelectorAll("time.local-time")) {
  const when = new Date(time.getAttribute("datetime"));
  if (Number.isNaN(when.getTime())) continue;
  time.title = time.textContent;
  time.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

// The lesson page's layout. Wide screens: the text and the lab side by side,
// split by a separator that a pointer drags and arrow keys move (its place
// kept in localStorage), and a button that hides the text so the lab takes
// the whole width. Narrow screens: one of the two at a time, chosen by the
// Lesson | Lab tabs at the top.
const split = document.getElementById("split");
if (split) {
  const narrow = window.matchMedia("(max-width: 760px)");
  const tabs = [...document.querySelectorAll(".view-tab")];
  const viewKey = `layerlab:view:${location.pathname}`;
  const showView = (view, focus = false) => {
    split.dataset.view = view;
    for (const tab of tabs) {
      const selected = tab.dataset.view === view;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      if (selected && focus) tab.focus();
    }
    sessionStorage.setItem(viewKey, view);
  };
  showView(sessionStorage.getItem(viewKey) === "lab" ? "lab" : "lesson");
  for (const tab of tabs) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      event.preventDefault();
      const other = tabs.find((t) => t !== tab);
      const to = event.key === "Home" ? tabs[0] : event.key === "End" ? tabs.at(-1) : other;
      showView(to.dataset.view, true);
    });
  }
  window.layerlab.showLab = () => {
    if (narrow.matches) showView("lab");
  };
  // The skip link leads to the lab, which a narrow screen may be hiding.
  document.querySelector('.skip-link[href="#lab"]')?.addEventListener("click", () => window.layerlab.showLab());

  // The split: the text's share of the width, in percent.
  const MIN = 20;
  const MAX = 75;
  const widthKey = "layerlab:text-width";
  const hiddenKey = "layerlab:text-hidden";
  const splitter = document.getElementById("splitter");
  const toggle = document.getElementById("split-toggle");
  const setWidth = (percent, keep) => {
    const p = Math.round(Math.min(MAX, Math.max(MIN, percent)));
    split.style.setProperty("--text-width", `${p}%`);
    splitter.setAttribute("aria-valuenow", String(p));
    splitter.setAttribute("aria-valuetext", `${p}% of the width`);
    if (keep) localStorage.setItem(widthKey, String(p));
  };
  const saved = Number(localStorage.getItem(widthKey));
  if (saved) setWidth(saved, false);
  const current = () => Number(splitter.getAttribute("aria-valuenow"));

  splitter.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 10 : 2;
    const to = { ArrowLeft: current() - step, ArrowRight: current() + step, Home: MIN, End: MAX }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    setWidth(to, true);
  });
  splitter.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    splitter.setPointerCapture(event.pointerId);
    split.classList.add("dragging");
    const box = split.getBoundingClientRect();
    const move = (e) => setWidth(((e.clientX - box.left) / box.width) * 100, false);
    const end = () => {
      split.classList.remove("dragging");
      splitter.removeEventListener("pointermove", move);
      localStorage.setItem(widthKey, String(current()));
    };
    splitter.addEventListener("pointermove", move);
    splitter.addEventListener("lostpointercapture", end, { once: true });
  });

  const setHidden = (hidden, keep) => {
    split.classList.toggle("text-hidden", hidden);
    splitter.hidden = hidden;
    const label = hidden ? "Show the lesson text" : "Hide the lesson text";
    toggle.setAttribute("aria-label", label);
    toggle.title = label;
    if (keep) localStorage.setItem(hiddenKey, hidden ? "1" : "");
  };
  setHidden(localStorage.getItem(hiddenKey) === "1", false);
  toggle.addEventListener("click", () => setHidden(!split.classList.contains("text-hidden"), true));
}
