// Page behaviour that needs no framework: CSRF header for htmx calls and
// the Run buttons of lesson code blocks.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRF-Token"] = csrfToken();
});

// A Run button types its command into the lab terminal once a lab is
// running (the terminal registers `window.layerlab.typeIntoTerminal`);
// until then it copies the command.
window.layerlab = window.layerlab ?? {};

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
