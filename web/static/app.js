// Page behaviour that needs no framework: CSRF header for htmx calls, the
// Run buttons of lesson code blocks, and the lesson text's scroll position.
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
