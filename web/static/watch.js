// An instructor's read-only view of a student's terminal: the same output
// the student sees, over the terminal's watch websocket; nothing typed
// here reaches the lab.
"use strict";

(() => {
  const root = document.getElementById("live-terminal");
  if (!root) return;
  const status = document.getElementById("live-status");
  const term = new window.Terminal({
    disableStdin: true,
    cursorBlink: false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
    fontSize: 14,
    lineHeight: 1.15,
  });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(root);
  fit.fit();
  new ResizeObserver(() => fit.fit()).observe(root);

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/labs/${root.dataset.lab}/terminals/${root.dataset.terminal}/watch`);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => {
    status.textContent = "Watching live, read-only. The student sees that you are watching.";
  });
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data));
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "exit") status.textContent = "The student's shell ended.";
  });
  socket.addEventListener("close", () => {
    if (!status.textContent.includes("ended")) status.textContent = "The view closed: the lab stopped or the connection dropped. Reload to try again.";
  });
})();
