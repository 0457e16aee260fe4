// Browser test of the lesson page's layout and accessibility, on a wide
// screen (1280 px) and a phone (390 px): the resizable split and the button
// that hides the text, the Lesson | Lab switch, the time left and the limit
// it counts down to, the key that leaves the terminal, the skip link, focus
// that always shows, xterm.js loaded only once a lab runs, the admin's labs
// page on a phone, and axe-core's audit of the course, login and lesson
// pages.
//
// uid blocks: this suite's servers take (7 << 28) + 16 * 65536 and
// (7 << 28) + 20 * 65536 (4 slots each); browser.test.mjs has 7 << 28,
// tasks.test.mjs + 8 * 65536, the click-to-prompt bench + 12 * 65536.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OUTPUT, addUser, assertNoSideways, logIn, startServer, stopServer, startLab, stopLab, suiteServer, waitForScreen, watchErrors } from "./harness.mjs";

const LESSON = "/lessons/01-what-is-a-container";
const WIDE = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const suite = suiteServer("browser-ui", (7 << 28) + 16 * 65536);

// A fresh student on the lesson page, with their errors and the terminal
// code's downloads watched.
async function student(name, viewport, options = {}) {
  addUser(suite.dir, name, `${name} password`);
  const context = await suite.browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  const errors = watchErrors(page);
  const terminalCode = [];
  page.on("request", (request) => /\/vendor\/(xterm|addon-)/.test(request.url()) && terminalCode.push(request.url()));
  await logIn(page, suite.url, name, `${name} password`, LESSON);
  return { context, page, errors, terminalCode };
}

// Tabs through the page: every stop shows where the focus is.
async function assertFocusShows(page, stops) {
  // From the top of the page: the skip link is the first stop.
  await page.evaluate(() => document.querySelector(".skip-link").focus());
  const seen = [];
  for (let i = 0; i < stops; i++) {
    await page.keyboard.press("Tab");
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const name = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}.${el.className}`;
      // xterm.js's own textarea is invisible; its terminal is outlined.
      const target = el.closest(".xterm") ?? el;
      const shown = getComputedStyle(target);
      return { name, inTerminal: !!el.closest(".xterm"), outline: shown.outlineStyle !== "none" && parseFloat(shown.outlineWidth) > 0 };
    });
    if (!focus) continue;
    seen.push(focus.name);
    assert.ok(focus.outline, `focus on ${focus.name} is visible`);
    // Tab inside a terminal is the shell's: stop there.
    if (focus.inTerminal) break;
  }
  assert.ok(seen.length >= 3, `tab reached a few controls: ${seen}`);
}

// axe-core in the page (injected past the CSP: only the audit's contexts
// are made with bypassCSP): what it finds serious or critical.
async function audit(page) {
  await page.addScriptTag({ content: AXE });
  const violations = await page.evaluate(async () => (await window.axe.run(document)).violations);
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

test("wide screen: the split moves and is kept, the text hides, and no terminal code loads before a lab", async () => {
  const { context, page, errors, terminalCode } = await student("reader", WIDE);

  // The skip link is the first stop and leads to the lab.
  await page.locator("body").focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to the lab");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "lab");

  // Run buttons are named by their command.
  await page.getByRole("button", { name: "Run cat /etc/os-release" }).waitFor();

  const separator = page.getByRole("separator", { name: "Width of the lesson text" });
  const textWidth = async () => (await page.locator("#lesson-column").boundingBox()).width;
  const splitWidth = async () => (await page.locator("#split").boundingBox()).width;
  assert.equal(await separator.getAttribute("aria-valuenow"), "45");
  const before = await textWidth();
  assert.ok(Math.abs(before - 0.45 * (await splitWidth())) < 2, `the text takes 45%: ${before}`);

  // Arrow keys move it, 2% a press.
  await separator.focus();
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowRight");
  assert.equal(await separator.getAttribute("aria-valuenow"), "51");
  assert.ok((await textWidth()) > before + 50, "the text grew");
  await page.keyboard.press("Home");
  assert.equal(await separator.getAttribute("aria-valuenow"), "20");

  // A pointer drags it; the width is kept across a reload.
  const box = await separator.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 200);
  await page.mouse.down();
  await page.mouse.move(0.6 * WIDE.width, box.y + 220, { steps: 5 });
  await page.mouse.up();
  assert.equal(await separator.getAttribute("aria-valuenow"), "60");
  await page.reload();
  assert.equal(await separator.getAttribute("aria-valuenow"), "60");
  assert.ok(Math.abs((await textWidth()) - 0.6 * (await splitWidth())) < 2, "the kept width applies");

  // The text hides so the lab has the whole width, and comes back.
  await page.getByRole("button", { name: "Hide the lesson text" }).click();
  assert.equal(await page.locator("#lesson-column").isVisible(), false);
  const lab = await page.locator("#lab").boundingBox();
  assert.ok(lab.width > WIDE.width - 40, `the lab takes the width: ${lab.width}`);
  await page.reload();
  assert.equal(await page.locator("#lesson-column").isVisible(), false, "hidden stays hidden across a reload");
  await page.getByRole("button", { name: "Show the lesson text" }).click();
  assert.ok(await page.locator("#lesson-column").isVisible());
  assert.ok(Math.abs((await textWidth()) - 0.6 * (await splitWidth())) < 2, "the text comes back at its width");

  await assertFocusShows(page, 12);
  assert.equal(await page.evaluate(() => typeof window.Terminal), "undefined");
  assert.deepEqual(terminalCode, [], "no xterm.js before a lab runs");
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
});

test("wide screen: a running lab loads the terminal, names its time limit, and Ctrl+] leaves the terminal", async () => {
  const { context, page, errors, terminalCode } = await student("typist", WIDE);
  assert.deepEqual(terminalCode, []);
  await startLab(page);
  assert.equal(terminalCode.length, 4, `xterm.js, its stylesheet and two addons: ${terminalCode}`);
  assert.ok(await page.evaluate(() => [...document.styleSheets].some((s) => /vendor\/xterm\.css/.test(s.href ?? ""))), "xterm.css applies");

  // Time left says which limit it counts down to and what moves it.
  const time = page.locator(".lab-time");
  assert.match(await time.textContent(), /^\d+:\d\d left · idle limit$/);
  assert.match(await page.locator(".lab-time-note").textContent(), /typing in the terminal restarts the clock/i);
  // A page opened while the lab runs has the terminal's code in its head.
  terminalCode.length = 0;
  await page.reload();
  await waitForScreen(page, /node1/);
  assert.equal(terminalCode.length, 4, `loaded with the page: ${terminalCode}`);
  assert.equal(await page.locator('head script[src*="vendor/xterm.js"]').count(), 1);
  assert.match(await time.textContent(), /^(29|30):\d\d left · idle limit$/, "the same after a reload");

  // Ctrl+] takes the focus out of the terminal to its tab; Tab goes on.
  assert.match(await page.locator("#lab-keys").textContent(), /Ctrl\+\] leaves the terminal/);
  await page.locator(".lab-screen:not([hidden]) .xterm").click();
  await page.keyboard.type("echo inside-$((3*3))\n");
  await waitForScreen(page, /inside-9/);
  assert.ok(await page.evaluate(() => !!document.activeElement.closest(".xterm")));
  await page.keyboard.press("Control+BracketRight");
  assert.deepEqual(
    await page.evaluate(() => [document.activeElement.getAttribute("role"), document.activeElement.textContent]),
    ["tab", "node1"],
  );
  await page.keyboard.press("Tab");
  assert.ok(await page.evaluate(() => !document.activeElement.closest(".xterm")), "Tab moves on, not back in");
  // Nothing reached the shell: Ctrl+] is not a character it saw.
  await page.locator(".lab-screen:not([hidden]) .xterm").click();
  await page.keyboard.type("echo after-$((4*4))\n");
  await waitForScreen(page, /after-16/);

  await assertFocusShows(page, 40);
  await page.screenshot({ path: join(OUTPUT, "lesson-ui-wide.png") });
  await stopLab(page);
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
});

test("phone: nothing scrolls sideways; Lesson | Lab tabs; skip link, time limit, Ctrl+] and focus; Run shows the terminal it types into", async () => {
  const context = await suite.browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${suite.url}/`);
  await assertNoSideways(page, "the course page");
  await page.goto(`${suite.url}/login`);
  await assertNoSideways(page, "the login page");
  await page.goto(`${suite.url}${LESSON}`);
  await assertNoSideways(page, "the lesson page, logged out");
  await page.goto(`${suite.url}/signup`);
  await assertNoSideways(page, "the sign-up page");
  addUser(suite.dir, "phone-admin", "phone-admin password", "admin");
  await logIn(page, suite.url, "phone-admin", "phone-admin password", "/admin/users");
  await assertNoSideways(page, "the accounts page");
  for (const path of ["/teach", `${LESSON}/grades`, "/admin/labs"]) {
    await page.goto(`${suite.url}${path}`);
    await assertNoSideways(page, path);
  }
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();

  const { context: own, page: phone, errors: more, terminalCode } = await student("walker", PHONE, { isMobile: true, hasTouch: true });
  const lessonTab = phone.getByRole("tab", { name: "Lesson" });
  const labTab = phone.getByRole("tab", { name: "Lab" });
  assert.equal(await lessonTab.getAttribute("aria-selected"), "true");
  assert.ok(await phone.locator("#lesson").isVisible());
  assert.equal(await phone.locator("#lab").isVisible(), false, "one view at a time");
  assert.equal(await phone.locator("#split-toggle").isVisible(), false, "the tabs replace the split");
  await assertNoSideways(phone, "the lesson page");

  // The skip link leads to the lab, which the Lab view shows.
  await phone.evaluate(() => document.querySelector(".skip-link").focus());
  await phone.keyboard.press("Enter");
  assert.equal(await labTab.getAttribute("aria-selected"), "true");
  assert.equal(await phone.evaluate(() => document.activeElement.id), "lab");
  assert.equal(await phone.locator("#lesson").isVisible(), false);
  assert.deepEqual(terminalCode, [], "no xterm.js before a lab runs");
  await startLab(phone);
  assert.equal(terminalCode.length, 4, `xterm.js once the lab runs: ${terminalCode}`);
  await assertNoSideways(phone, "the lesson page with a running lab");

  // The admin's labs page lists that lab on a phone too, with its Stop.
  const adminContext = await suite.browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const admin = await adminContext.newPage();
  const adminErrors = watchErrors(admin);
  await logIn(admin, suite.url, "phone-admin", "phone-admin password", "/admin/labs");
  const row = admin.locator("tr", { has: admin.getByRole("rowheader", { name: "walker" }) });
  assert.match(await row.textContent(), /01-what-is-a-container[\s\S]*ready[\s\S]*MiB of 512 MiB/);
  assert.ok(await row.getByRole("button", { name: /Stop the lab of walker/ }).isVisible());
  await assertNoSideways(admin, "the admin's labs page with a lab");
  await admin.screenshot({ path: join(OUTPUT, "admin-labs-phone.png"), fullPage: true });
  assert.deepEqual(adminErrors, [], "no script errors and no CSP violations on the labs page");
  await adminContext.close();
  const time = phone.locator(".lab-time");
  assert.match(await time.textContent(), /^\d+:\d\d left · idle limit$/);
  const box = await time.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, "time left is on screen");
  assert.ok(await phone.locator(".lab-time-note").isVisible(), "and what moves it");
  assert.ok(await phone.locator("#lab-keys").isVisible(), "the key that leaves the terminal is shown");
  await phone.locator(".lab-screen:not([hidden]) .xterm").tap();
  await phone.keyboard.press("Control+BracketRight");
  assert.equal(await phone.evaluate(() => document.activeElement.textContent), "node1", "Ctrl+] leaves the terminal");
  await assertFocusShows(phone, 40);

  // Back to the text; Run brings the lab into view before it types.
  await lessonTab.tap();
  assert.equal(await phone.locator("#lab").isVisible(), false);
  await phone.getByRole("button", { name: "Run cat /etc/os-release" }).tap();
  assert.equal(await labTab.getAttribute("aria-selected"), "true");
  assert.ok(await phone.locator(".lab-screen:not([hidden]) .xterm").isVisible());
  await waitForScreen(phone, /PRETTY_NAME="Debian/);
  const terminal = await phone.locator(".lab-screen:not([hidden]) .xterm").boundingBox();
  assert.ok(terminal.width > 300 && terminal.x + terminal.width <= PHONE.width, `the terminal fits: ${JSON.stringify(terminal)}`);

  // The view is kept across a reload.
  await phone.reload();
  assert.equal(await labTab.getAttribute("aria-selected"), "true");
  await waitForScreen(phone, /PRETTY_NAME/);
  await phone.screenshot({ path: join(OUTPUT, "lesson-ui-phone.png") });
  await stopLab(phone);
  assert.deepEqual([...errors, ...more], [], "no script errors and no CSP violations");
  await own.close();
});

test("axe-core finds nothing serious on the course, login and lesson pages, wide and on a phone", async () => {
  const { context, page } = await student("auditor", WIDE, { bypassCSP: true });
  await startLab(page);
  const found = [];
  for (const viewport of [WIDE, PHONE]) {
    await page.setViewportSize(viewport);
    for (const path of ["/", LESSON]) {
      await page.goto(`${suite.url}${path}`);
      if (path === LESSON) await waitForScreen(page, /node1/);
      for (const v of await audit(page)) found.push(`${viewport.width} px ${path}: ${v}`);
      // A phone shows the text first; the lab is the other view.
      if (path === LESSON && viewport === PHONE) {
        await page.getByRole("tab", { name: "Lab" }).click();
        await page.locator(".lab-screen:not([hidden]) .xterm").waitFor();
        for (const v of await audit(page)) found.push(`${viewport.width} px ${path}, Lab view: ${v}`);
      }
    }
  }
  await page.setViewportSize(WIDE);
  await stopLab(page);
  await context.close();
  const anonymous = await suite.browser.newContext({ viewport: WIDE, bypassCSP: true });
  const login = await anonymous.newPage();
  for (const viewport of [WIDE, PHONE]) {
    await login.setViewportSize(viewport);
    await login.goto(`${suite.url}/login`);
    for (const v of await audit(login)) found.push(`${viewport.width} px /login: ${v}`);
  }
  await anonymous.close();
  assert.deepEqual(found, []);
});

test("a lab whose lifetime ends first says so, and how to get more time", async () => {
  // A server whose labs reach their lifetime (20 min) before going idle (30 min).
  const dir = mkdtempSync(join(tmpdir(), "layerlab-browser-ui-lifetime-"));
  const other = await startServer(dir, "browser-ui-lifetime", (7 << 28) + 20 * 65536, ["--lab-max-lifetime", "20m"]);
  try {
    addUser(dir, "sprinter", "sprinter password");
    const context = await suite.browser.newContext({ viewport: WIDE });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await logIn(page, other.url, "sprinter", "sprinter password", LESSON);
    await startLab(page);
    assert.match(await page.locator(".lab-time").textContent(), /^(19|20):\d\d left · time limit$/);
    assert.match(await page.locator(".lab-time-note").textContent(), /stop it and start a new lab for more time/);
    await page.reload();
    await waitForScreen(page, /node1/);
    assert.match(await page.locator(".lab-time").textContent(), /^(19|20):\d\d left · time limit$/);
    await stopLab(page);
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
    await context.close();
  } finally {
    await stopServer(other.child, "browser-ui-lifetime");
  }
});
