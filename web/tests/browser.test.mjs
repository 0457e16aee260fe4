// Browser test: the real layerlab binary, driven through Debian's Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OUTPUT, addUser, launchBrowser, logIn, startServer, stopServer, waitForScreen, watchErrors } from "./harness.mjs";

let server;
let baseUrl;
let browser;
const dataDir = mkdtempSync(join(tmpdir(), "layerlab-browser-"));

before(async () => {
  browser = await launchBrowser();
  addUser(dataDir, "student1", "student1 password");
  addUser(dataDir, "wanderer", "wanderer password");
  ({ child: server, url: baseUrl } = await startServer(dataDir, "browser", 7 << 28));
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server, "browser");
});

// The lab pane is the page's right-hand column, beside the lesson text.
async function assertBesideTheLesson(page) {
  const lesson = await page.locator("#lesson").boundingBox();
  const lab = await page.locator("aside#lab").boundingBox({ timeout: 5000 });
  assert.ok(lab, "the lab pane is on the page");
  assert.ok(lab.x >= lesson.x + lesson.width - 1, `the lab pane is beside the lesson: ${JSON.stringify({ lesson, lab })}`);
  assert.ok(lab.height > 400, `the lab pane fills the column: ${JSON.stringify(lab)}`);
}

test("a student logs in, reads a lesson and uses a run button", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);

  await page.goto(`${baseUrl}/`);
  await assert.doesNotReject(page.getByRole("link", { name: /what is a container/i }).first().waitFor());
  await page.getByRole("link", { name: "Log in" }).click();

  // A wrong password first: htmx swaps in the error without a reload.
  await page.getByLabel("User name").fill("student1");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /Wrong user name or password/);

  await page.getByLabel("Password").fill("student1 password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Log out").waitFor();
  assert.match(await page.locator(".who").textContent(), /student1/);

  await page.locator(".lesson-card a").first().click();
  await page.waitForURL(/\/lessons\/01-/);
  const heading = await page.locator("article.lesson h1").textContent();
  assert.ok(heading.length > 3, "lesson title shown");
  assert.ok(await page.locator("#lab").isVisible(), "lab pane is beside the text");
  const runButtons = page.locator(".run-button");
  assert.ok((await runButtons.count()) > 0, "run buttons rendered");
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
  const first = runButtons.first();
  const command = await first.getAttribute("data-command");
  await first.click();
  await page.waitForFunction((el) => el.textContent !== "Run", await first.elementHandle());
  assert.equal(await first.textContent(), "Copied");
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);

  await page.screenshot({ path: join(OUTPUT, "lesson.png"), fullPage: false });
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
});

test("a student starts a lab, types in its terminal, runs a lesson command and keeps the shell across a reload", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);

  await logIn(page, baseUrl, "student1", "student1 password", "/lessons/01-what-is-a-container");

  // Start lab answers once the node is up, with its terminal: nothing
  // polls for the lab on a timer.
  const labRequests = [];
  page.on("request", (request) => new URL(request.url()).pathname.endsWith("/lab") && labRequests.push(request.method()));
  await page.getByRole("button", { name: "Start lab" }).click();
  await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 120_000 });
  await page.locator(".lab-screen .xterm").first().waitFor();
  await waitForScreen(page, /node1/);
  assert.deepEqual(labRequests, ["POST"], "one request from Start lab to its terminal");
  assert.match(await page.locator(".lab-time").textContent(), /\d+:\d\d left/, "time left is shown");

  // Typing goes to the shell and its output comes back.
  await page.locator(".lab-screen:not([hidden]) .xterm").click();
  await page.keyboard.type("echo typed-$((6*7))\n");
  await waitForScreen(page, /typed-42/);

  // A run button types its command into the terminal and presses Enter:
  // `cat /etc/os-release` prints the node's distribution.
  await page.locator('.run-button[data-command="cat /etc/os-release"]').click();
  await waitForScreen(page, /cat \/etc\/os-release\s*\n(.*\n)*PRETTY_NAME="Debian/);

  // A second shell in its own tab.
  await page.getByRole("button", { name: "Open another shell" }).click();
  await page.getByRole("tab", { name: "shell-2" }).waitFor();
  await waitForScreen(page, /node1/);
  await page.keyboard.type("echo second-$((2+3))\n");
  await waitForScreen(page, /second-5/);
  await page.getByRole("tab", { name: "node1" }).click();
  await waitForScreen(page, /typed-42/);
  await page.screenshot({ path: join(OUTPUT, "lab.png"), fullPage: false });

  // A reload brings back the same shells and their screens.
  await page.reload();
  await page.locator("#lab-status[data-state=ready]").waitFor();
  await waitForScreen(page, /typed-42/);
  await page.getByRole("tab", { name: "shell-2" }).click();
  await waitForScreen(page, /second-5/);

  // A shell's tab closes, ending the shell: a reload does not bring it back.
  await page.getByRole("button", { name: "Close shell-2" }).click();
  await page.getByRole("tab", { name: "shell-2" }).waitFor({ state: "detached" });
  assert.equal(await page.getByRole("tab", { name: "node1" }).getAttribute("aria-selected"), "true");
  assert.equal(await page.getByRole("button", { name: "Close node1" }).count(), 0, "node1 stays");
  await page.reload();
  await waitForScreen(page, /typed-42/);
  assert.deepEqual(await page.getByRole("tab").allTextContents(), ["node1", "Ports"]);

  // Stopping the lab brings back the start button and says why it ended,
  // in the pane beside the lesson, from where a new lab starts at once.
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.getByRole("button", { name: "Start lab" }).waitFor();
  assert.match(await page.locator(".lab-ended").textContent(), /stopped by its user/);
  await assertBesideTheLesson(page);
  await page.getByRole("button", { name: "Start lab" }).click();
  await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 120_000 });
  await waitForScreen(page, /node1/);
  await assertBesideTheLesson(page);
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.getByRole("button", { name: "Start lab" }).waitFor();
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
});

test("a student opens a container's published port from the Ports tab", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await logIn(page, baseUrl, "student1", "student1 password", "/lessons/02-images-vs-containers");
  await page.getByRole("button", { name: "Start lab" }).click();
  await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 120_000 });
  await waitForScreen(page, /node1/);

  await page.getByRole("tab", { name: "Ports" }).click();
  await page.getByText("Nothing listens in node1 yet").waitFor();

  await page.getByRole("tab", { name: "node1" }).click();
  await page.locator(".lab-screen:not([hidden]) .xterm").click();
  await page.keyboard.type("docker run -d -p 8080:80 nginx && until curl -sf -o /dev/null localhost:8080; do sleep 0.1; done; echo up-$((40+2))\n");
  await waitForScreen(page, /up-42/);

  await page.getByRole("tab", { name: "Ports" }).click();
  const link = page.getByRole("link", { name: "localhost:8080" });
  await link.waitFor();
  const [preview] = await Promise.all([context.waitForEvent("page"), link.click()]);
  await preview.waitForLoadState();
  assert.match(new URL(preview.url()).pathname, /^\/labs\/[^/]+\/ports\/8080\/$/);
  assert.match(await preview.locator("h1").textContent(), /nginx is running/);
  // The lab's page runs as a site of its own: it cannot read ours.
  assert.equal(await preview.evaluate(() => { try { return document.cookie; } catch { return "blocked"; } }), "blocked");
  await preview.screenshot({ path: join(OUTPUT, "preview.png"), fullPage: false });
  await preview.close();

  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.getByRole("button", { name: "Start lab" }).waitFor();
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
});

test("the lesson text keeps its place across a reload", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 700 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  try {
    await page.goto(`${baseUrl}/lessons/01-what-is-a-container`);
    const lesson = page.locator("#lesson");
    await lesson.evaluate((text) => text.scrollTo(0, 600));
    // Wait for this key: the page keeps other state in sessionStorage too.
    await page.waitForFunction(
      () => sessionStorage.getItem(`layerlab:scroll:${location.pathname}`) === "600",
      null,
      { timeout: 5000 },
    );
    await page.reload();
    await page.waitForFunction(() => document.getElementById("lesson").scrollTop > 0, null, { timeout: 5000 });
    assert.equal(await lesson.evaluate((text) => text.scrollTop), 600);
    // Another lesson starts at its top.
    await page.goto(`${baseUrl}/lessons/02-images-vs-containers`);
    assert.equal(await page.locator("#lesson").evaluate((text) => text.scrollTop), 0);
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
  } finally {
    await context.close();
  }
});

test("an idle lab warns the student, then stops and says why", async () => {
  const dir = mkdtempSync(join(tmpdir(), "layerlab-browser-idle-"));
  addUser(dir, "idler", "idler password");
  const { child, url } = await startServer(dir, "browser-idle", (7 << 28) + 4 * 65536, ["--lab-idle-timeout", "18s"]);
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  try {
    const page = await context.newPage();
    const errors = watchErrors(page);
    await logIn(page, url, "idler", "idler password", "/lessons/01-what-is-a-container");
    assert.match(await page.locator(".lab-body").textContent(), /stops after 18 s without activity/);
    await page.getByRole("button", { name: "Start lab" }).click();
    await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 120_000 });

    // An 18 s idle timeout warns in its last 3 s.
    const warning = page.locator("#lab-warning");
    await warning.waitFor({ state: "visible", timeout: 30_000 });
    assert.match(await warning.textContent(), /No activity: this lab stops in 0:0\d\. Type in the terminal to keep it\./);
    assert.ok(await page.locator(".lab-time.warn").isVisible(), "the time left turns into a warning");
    await page.screenshot({ path: join(OUTPUT, "lab-idle-warning.png"), fullPage: false });

    // Nobody types: the reaper stops the lab and the pane says so.
    await page.getByRole("button", { name: "Start lab" }).waitFor({ timeout: 30_000 });
    assert.match(await page.locator(".lab-ended").textContent(), /stopped after 18 s without activity/);
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
  } finally {
    await context.close();
    await stopServer(child, "browser-idle");
  }
});

test("a student checks a task without a lab and reveals a hint", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  try {
    await logIn(page, baseUrl, "student1", "student1 password", "/lessons/01-what-is-a-container");

    const task = page.locator("#task-save-hostname");
    await task.getByRole("button", { name: "Check" }).click();
    await task.locator(".task-notice").waitFor();
    assert.match(await task.locator(".task-notice").textContent(), /Start the lab first/);

    // The hint is swapped in with its cost; the next one offers its own price.
    page.once("dialog", (dialog) => dialog.accept());
    await page.locator("#task-save-hostname .hint-button").click();
    await page.locator("#task-save-hostname .hint-text").waitFor();
    assert.match(await page.locator("#task-save-hostname .hint-text").textContent(), /hostname/);
    assert.match(await page.locator("#task-save-hostname .hint-cost").textContent(), /2 pts/);
    assert.match(await page.locator("#task-save-hostname .hint-button").textContent(), /costs 5 pts/);

    await page.locator("#tasks-heading").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(OUTPUT, "tasks.png"), fullPage: false });
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
  } finally {
    await context.close();
  }
});

test("a login link cannot send the browser to another site", async () => {
  const context = await browser.newContext();
  // Should the browser head for the other site, it lands on this stand-in
  // instead of the network.
  await context.route(
    (url) => url.hostname === "evil.example",
    (route) => route.fulfill({ contentType: "text/html", body: "<p>evil</p>" }),
  );
  const page = await context.newPage();
  try {
    // A tab inside `/\t/evil.example`: browsers drop it and read `//evil.example`.
    await page.goto(`${baseUrl}/login?next=/%09/evil.example`);
    await page.getByLabel("User name").fill("wanderer");
    await page.getByLabel("Password").fill("wanderer password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL((u) => !u.pathname.startsWith("/login"));
    const landed = new URL(page.url());
    assert.equal(landed.origin, new URL(baseUrl).origin, `login sent the browser to ${landed}`);
    assert.equal(landed.pathname, "/");
    await page.getByText("Log out").waitFor();
  } finally {
    await context.close();
  }
});
