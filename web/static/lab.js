// The lab pane's terminals: xterm.js over the terminal websocket, one tab
// per shell. The pane itself (start, stop, state, time left) is server
// rendered and swapped by htmx; this file mounts terminals into it whenever
// it shows a running lab, and takes them down before it is swapped away.
// xterm.js, its stylesheet and addons load only then (their addresses are
// on #lab), or from the moment Start lab is pressed, so the download
// overlaps the lab's start.
"use strict";

(() => {
  const MAX_TERMINALS = 4;
  // Output the browser may hold undrawn before it asks the server to pause.
  const HIGH_WATER = 512 * 1024;
  const LOW_WATER = 64 * 1024;
  const THEME = {
    background: "#0f172a",
    foreground: "#e2e8f0",
    cursor: "#5eead4",
    selectionBackground: "#334155",
    black: "#1e293b",
    brightBlack: "#64748b",
  };

  window.layerlab = window.layerlab ?? {};
  let lab = null;

  let terminalCode = null;
  function loadTerminalCode() {
    if (window.Terminal && window.FitAddon && window.WebLinksAddon) return Promise.resolve();
    if (terminalCode) return terminalCode;
    const urls = document.getElementById("lab")?.dataset ?? {};
    const load = (element, url) =>
      new Promise((resolve, reject) => {
        element.addEventListener("load", resolve, { once: true });
        element.addEventListener("error", () => reject(new Error(`${url} did not load`)), { once: true });
        document.head.append(element);
      });
    const styles = [urls.xtermCss].map((href) => {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      return load(link, href);
    });
    const scripts = [urls.xterm, urls.addonFit, urls.addonWebLinks].map((src) => {
      const script = document.createElement("script");
      // Fetched at once, run in order.
      script.async = false;
      script.src = src;
      return load(script, src);
    });
    terminalCode = Promise.all([...styles, ...scripts]).catch((err) => {
      terminalCode = null;
      throw err;
    });
    return terminalCode;
  }

  function mount(root) {
    const tabs = root.querySelector(".lab-tabs");
    const screens = root.querySelector(".lab-screens");
    const tablist = root.querySelector(".lab-tablist");
    const state = { id: root.dataset.lab, root, tabs, tablist, screens, shells: new Map(), active: null };
    const add = document.createElement("button");
    add.type = "button";
    add.className = "lab-tab lab-add";
    add.title = "Open another shell";
    add.setAttribute("aria-label", "Open another shell");
    add.textContent = "+";
    add.addEventListener("click", () => {
      for (let n = 2; n <= MAX_TERMINALS; n++) {
        if (!state.shells.has(`shell-${n}`)) return open(state, `shell-${n}`);
      }
    });
    tabs.append(add);
    state.add = add;
    mountPorts(state);
    const names = (root.dataset.terminals ?? "").split(" ").filter(Boolean);
    if (!names.includes("node1")) names.unshift("node1");
    for (const name of names) open(state, name);
    activate(state, "node1");
    state.observer = new ResizeObserver(() => fitActive(state));
    state.observer.observe(screens);
    lab = state;
    window.layerlab.typeIntoTerminal = (command) => {
      if (state.active === PORTS) activate(state, "node1");
      const shell = state.shells.get(state.active);
      if (!shell) return;
      shell.send(new TextEncoder().encode(`${command}\r`));
      shell.term.focus();
    };
  }

  // The Ports tab: what listens in the node, each opened through the
  // server's preview in a tab of its own.
  const PORTS = "ports";

  function mountPorts(state) {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "lab-tab lab-ports-tab";
    tab.setAttribute("role", "tab");
    tab.textContent = "Ports";
    tab.title = "Web servers listening in node1";
    const screen = document.createElement("div");
    screen.className = "lab-screen lab-ports";
    screen.setAttribute("role", "tabpanel");
    screen.setAttribute("aria-live", "polite");
    screen.hidden = true;
    state.tablist.append(tab);
    state.screens.append(screen);
    tab.addEventListener("click", () => {
      activate(state, PORTS);
      showPorts(state);
    });
    state.ports = { tab, screen };
  }

  function line(tag, text) {
    const el = document.createElement(tag);
    el.textContent = text;
    return el;
  }

  async function showPorts(state) {
    const { screen } = state.ports;
    const refresh = line("button", "Refresh");
    refresh.type = "button";
    refresh.className = "button secondary";
    refresh.addEventListener("click", () => showPorts(state));
    screen.replaceChildren(line("p", "Looking for servers in node1…"));
    let found;
    try {
      const res = await fetch(`/api/labs/${state.id}/ports`, { headers: { accept: "application/json" } });
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? `the server answered ${res.status}`);
      found = (await res.json()).ports;
    } catch (err) {
      screen.replaceChildren(line("p", `The ports could not be listed: ${err.message}`), refresh);
      return;
    }
    if (found.length === 0) {
      screen.replaceChildren(
        line("p", "Nothing listens in node1 yet. Start a web server, for example docker run -d -p 8080:80 nginx, then refresh."),
        refresh,
      );
      return;
    }
    const list = document.createElement("ul");
    list.className = "port-list";
    for (const { port, url } of found) {
      const link = line("a", `localhost:${port}`);
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      const item = document.createElement("li");
      item.append(link, line("span", " opens in a new tab"));
      list.append(item);
    }
    screen.replaceChildren(line("p", "Servers listening in node1:"), list, refresh);
  }

  // Only tabs may be in the tablist, so the close buttons and + sit
  // beside it; the tablist does not make a box of its own (display:
  // contents), and each close button is shown after its tab.
  function placeTabs(state) {
    let order = 0;
    for (const tab of state.tablist.children) {
      if (tab === state.ports.tab) state.add.style.order = String(order++);
      tab.style.order = String(order++);
      const shell = [...state.shells.values()].find((s) => s.tab === tab);
      if (shell?.closer) shell.closer.style.order = String(order++);
    }
  }

  function unmount() {
    if (!lab) return;
    lab.observer.disconnect();
    for (const shell of lab.shells.values()) shell.close();
    lab = null;
    delete window.layerlab.typeIntoTerminal;
  }

  function fitActive(state) {
    const shell = state.shells.get(state.active);
    // Not while the lab is out of view (the Lesson view of a narrow screen).
    if (shell && !shell.screen.hidden && state.screens.clientWidth > 0) shell.fit.fit();
  }

  function activate(state, name) {
    state.active = name;
    for (const [key, shell] of state.shells) {
      shell.tab.setAttribute("aria-selected", String(key === name));
      shell.screen.hidden = key !== name;
    }
    state.ports.tab.setAttribute("aria-selected", String(name === PORTS));
    state.ports.screen.hidden = name !== PORTS;
    fitActive(state);
    state.shells.get(name)?.term.focus();
  }

  // Ends the shell on the server too, so a reload does not bring it back.
  function closeShell(state, name) {
    const shell = state.shells.get(name);
    if (!shell) return;
    shell.remove();
    state.shells.delete(name);
    if (state.active === name) activate(state, "node1");
    // keepalive: a reload right after the click must not cancel it.
    fetch(`/api/labs/${state.id}/terminals/${name}`, {
      method: "DELETE",
      headers: { "X-CSRF-Token": window.layerlab.csrfToken() },
      keepalive: true,
    }).catch((err) => console.warn(`${name} may still run on the node: ${err}`));
  }

  function open(state, name) {
    if (state.shells.has(name)) return activate(state, name);
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "lab-tab";
    tab.setAttribute("role", "tab");
    tab.textContent = name;
    tab.addEventListener("click", () => activate(state, name));
    state.tablist.insertBefore(tab, state.ports.tab);
    // node1 is the lab's own shell; the others can be closed.
    let closer = null;
    if (name !== "node1") {
      closer = document.createElement("button");
      closer.type = "button";
      closer.className = "lab-tab-close";
      closer.setAttribute("aria-label", `Close ${name}`);
      closer.title = `Close ${name} and end its shell`;
      closer.textContent = "×";
      closer.addEventListener("click", () => closeShell(state, name));
      state.tabs.append(closer);
    }
    const screen = document.createElement("div");
    screen.className = "lab-screen";
    screen.setAttribute("role", "tabpanel");
    state.screens.append(screen);

    const term = new window.Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      // Room below the baseline, or some fonts lose their underscores.
      lineHeight: 1.15,
      scrollback: 5000,
      theme: THEME,
    });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.loadAddon(new window.WebLinksAddon.WebLinksAddon());
    term.open(screen);
    term.textarea?.setAttribute("aria-describedby", "lab-keys");
    // Ctrl+Shift+C copies, Ctrl+Shift+V pastes (the browser's own paste,
    // which xterm.js picks up); Ctrl+C with text selected copies it too.
    // Ctrl+] leaves the terminal, which otherwise keeps Tab and Escape:
    // focus goes to the shell's tab, and Tab goes on from there.
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown" || !event.ctrlKey) return true;
      if (event.code === "BracketRight" || event.key === "]") {
        event.preventDefault();
        tab.focus();
        return false;
      }
      const key = event.key.toLowerCase();
      if (key === "c" && (event.shiftKey || term.hasSelection())) {
        navigator.clipboard?.writeText(term.getSelection()).catch(() => {});
        return false;
      }
      return !(key === "v" && event.shiftKey);
    });

    const shell = { term, fit, tab, closer, screen, socket: null, closed: false, pending: 0, paused: false };
    shell.send = (bytes) => shell.socket?.readyState === WebSocket.OPEN && shell.socket.send(bytes);
    const control = (message) => shell.socket?.readyState === WebSocket.OPEN && shell.socket.send(JSON.stringify(message));
    shell.close = () => {
      shell.closed = true;
      shell.socket?.close();
      term.dispose();
    };
    shell.remove = () => {
      shell.close();
      tab.remove();
      closer?.remove();
      screen.remove();
    };

    let retry = 0;
    let exited = false;
    const connect = () => {
      exited = false;
      shell.pending = 0;
      shell.paused = false;
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const socket = new WebSocket(`${scheme}://${location.host}/api/labs/${state.id}/terminals/${name}`);
      socket.binaryType = "arraybuffer";
      shell.socket = socket;
      let replayed = false;
      socket.addEventListener("open", () => {
        retry = 0;
        control({ type: "resize", cols: term.cols, rows: term.rows });
      });
      socket.addEventListener("message", (event) => {
        if (typeof event.data === "string") {
          const message = JSON.parse(event.data);
          if (message.type === "exit") {
            exited = true;
            term.write(`\r\n\x1b[2m[the shell ended with code ${message.code}; press any key for a new one]\x1b[0m\r\n`);
          }
          return;
        }
        // The server starts every connection with the screen so far.
        if (!replayed) {
          replayed = true;
          term.reset();
        }
        const bytes = new Uint8Array(event.data);
        shell.pending += bytes.length;
        if (!shell.paused && shell.pending > HIGH_WATER) {
          shell.paused = true;
          control({ type: "pause" });
        }
        term.write(bytes, () => {
          shell.pending -= bytes.length;
          if (shell.paused && shell.pending < LOW_WATER) {
            shell.paused = false;
            control({ type: "resume" });
          }
        });
      });
      socket.addEventListener("close", () => {
        if (shell.closed || exited) return;
        // Dropped network or a restarting server: come back to the same
        // shell, which kept running.
        const delay = Math.min(1000 * 2 ** retry, 10_000);
        retry += 1;
        term.write(`\r\n\x1b[2m[connection lost; reconnecting…]\x1b[0m\r\n`);
        setTimeout(() => !shell.closed && connect(), delay);
      });
    };
    term.onData((data) => {
      if (exited) return connect();
      shell.send(new TextEncoder().encode(data));
    });
    term.onBinary((data) => shell.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    term.onResize(({ cols, rows }) => control({ type: "resize", cols, rows }));
    state.shells.set(name, shell);
    placeTabs(state);
    connect();
    activate(state, name);
  }

  // The text of the shell in front, for tests and the browser console.
  window.layerlab.terminalText = () => {
    const buffer = lab?.shells.get(lab.active)?.term.buffer.active;
    if (!buffer) return "";
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  };

  // Time left, and a warning before the lab stops for being idle or old.
  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
    return `${h ? `${h}:` : ""}${m}:${String(s % 60).padStart(2, "0")}`;
  };
  let skew = 0;
  function tick() {
    const time = document.querySelector(".lab-time");
    const warning = document.getElementById("lab-warning");
    if (!time) return;
    const left = Number(time.dataset.expiresAt) - (Date.now() / 1000 + skew);
    const idle = time.dataset.because === "idle";
    time.textContent = `${clock(left)} left · ${idle ? "idle limit" : "time limit"}`;
    const warn = left <= Number(time.dataset.warn);
    time.classList.toggle("warn", warn);
    if (!warning || warning.dataset.sticky) return;
    warning.hidden = !warn;
    if (warn) {
      warning.textContent = idle
          ? `No activity: this lab stops in ${clock(left)}. Type in the terminal to keep it.`
          : `This lab reaches its time limit in ${clock(left)}. Save what you need.`;
    }
  }
  function syncClock() {
    const time = document.querySelector(".lab-time");
    if (time) skew = Number(time.dataset.now) - Date.now() / 1000;
  }
  setInterval(tick, 1000);

  let loading = null;
  async function refresh() {
    const root = document.getElementById("lab-terminals");
    if (lab && lab.root !== root) unmount();
    syncClock();
    tick();
    if (!root || lab || loading === root) return;
    loading = root;
    try {
      await loadTerminalCode();
    } catch (err) {
      const warning = document.getElementById("lab-warning");
      if (warning) {
        warning.hidden = false;
        warning.dataset.sticky = "1";
        warning.textContent = `The terminal could not load (${err.message}); reload the page.`;
      }
      return;
    } finally {
      loading = null;
    }
    // The pane may have changed while the code loaded.
    if (root.isConnected && !lab) mount(root);
  }
  // Start lab: fetch the terminal's code while the lab starts, from the
  // moment the button goes down (a click comes a tenth of a second later).
  const starting = (event) => {
    if (event.target.closest?.("#start-lab")) loadTerminalCode().catch(() => {});
  };
  document.addEventListener("pointerdown", starting);
  document.addEventListener("keydown", starting);
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt?.id === "start-lab") loadTerminalCode().catch(() => {});
  });
  // After the swap, not the settle: the terminals connect 20 ms sooner.
  document.addEventListener("htmx:afterSwap", refresh);
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target?.id === "lab") unmount();
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", refresh);
  } else {
    refresh();
  }
})();
