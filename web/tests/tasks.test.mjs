// Browser test of the task list beside a running lab: checks, hints and
// what a passed task still offers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { OUTPUT, addUser, assertNoSideways, logIn, startLab, stopLab, suiteServer, waitForScreen, watchErrors } from "./harness.mjs";

const LESSON = "/lessons/01-what-is-a-container";
const suite = suiteServer("browser-tasks", (7 << 28) + 8 * 65536);

// A fresh student on the lesson page, with their errors watched.
async function student(name) {
  addUser(suite.dir, name, `${name} password`);
  const context = await suite.browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await logIn(page, suite.url, name, `${name} password`, LESSON);
  return { context, page, errors };
}

async function type(page, line) {
  await page.locator(".lab-screen:not([hidden]) .xterm").click();
  await page.keyboard.type(`${line}; echo done-$((40+2))\n`);
  await waitForScreen(page, /\ndone-42/);
}

async function assertInView(page, locator) {
  const box = await locator.boundingBox();
  const { height } = page.viewportSize();
  assert.ok(box && box.y >= 0 && box.y + box.height <= height, `in view: ${JSON.stringify(box)}`);
}

const progress = (page) => page.evaluate((url) => fetch(url).then((r) => r.json()), `/api${LESSON}/progress`);

test("the tasks and the score stay in view; a hint asks before it costs points; a passed task offers neither Check nor hints", async () => {
  const { context, page, errors } = await student("achiever");
  try {
    // The tasks and the standing stay in view wherever the text is.
    const standing = page.locator("#task-standing");
    assert.equal(await standing.textContent(), "0/5 tasks · 0/55 points");
    for (const top of [100_000, 0]) {
      await page.locator("#lesson").evaluate((text, y) => text.scrollTo(0, y), top);
      await assertInView(page, standing);
      await assertInView(page, page.locator("#task-save-hostname"));
    }

    // Declining the question reveals nothing and costs nothing.
    const kernel = page.locator("#task-save-kernel");
    const questions = [];
    page.once("dialog", (dialog) => {
      questions.push(dialog.message());
      dialog.dismiss();
    });
    await kernel.locator(".hint-button").click();
    await page.waitForTimeout(300);
    assert.equal(questions.length, 1, "revealing a hint asks first");
    assert.match(questions[0], /costs 2 points/);
    assert.equal(await kernel.locator(".hint-text").count(), 0, "a declined hint stays hidden");
    assert.equal((await progress(page)).hint_cost, 0);

    page.once("dialog", (dialog) => dialog.accept());
    await kernel.locator(".hint-button").click();
    await kernel.locator(".hint-text").waitFor();
    assert.equal((await progress(page)).hint_cost, 2);

    // The hostname task passes by itself once the work is done; from then
    // on it has nothing to check and no hint to buy.
    await startLab(page);
    await type(page, "hostname > /root/hostname.txt");
    const task = page.locator("#task-save-hostname");
    await page.locator("#task-save-hostname.passed").waitFor({ timeout: 15_000 });
    // 10 points, less the 2 the hint cost.
    await page.waitForFunction(() => document.getElementById("task-standing").textContent === "1/5 tasks · 8/55 points");
    assert.equal(await task.getByRole("button", { name: "Check" }).count(), 0, "no Check on a passed task");
    assert.equal(await task.locator(".hint-button").count(), 0, "no paid hint on a passed task");
    await page.reload();
    await page.locator("#task-save-hostname.passed").waitFor();
    assert.equal(await task.getByRole("button", { name: "Check" }).count(), 0, "no Check after a reload");
    assert.equal(await task.locator(".hint-button").count(), 0, "no paid hint after a reload");
    assert.equal(await standing.textContent(), "1/5 tasks · 8/55 points");

    // Nor does the API sell one.
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
    const refused = await page.request.post(`${suite.url}/api${LESSON}/tasks/save-hostname/hints`, {
      headers: { "X-CSRF-Token": csrf },
    });
    assert.equal(refused.status(), 409);
    assert.match((await refused.json()).error, /already passed/);
    assert.equal((await progress(page)).hint_cost, 2, "the passed task's hint cost nothing");

    await stopLab(page);
    await page.goto(`${suite.url}/`);
    assert.equal(
      await page.locator(`.lesson-card a[href="${LESSON}"] .standing`).textContent(),
      "1/5 tasks · 8/55 points",
      "the course page shows the standing too",
    );
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
  } finally {
    await context.close();
  }
});

test("Check is disabled while its check runs, so pressing it again sends nothing", async () => {
  const { context, page, errors } = await student("clicker");
  try {
    await startLab(page);
    const task = page.locator("#task-save-kernel");
    const button = task.getByRole("button", { name: /Check/ });
    // Hold the check at the browser until the button has been pressed again.
    let requests = 0;
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await page.route(`**${LESSON}/tasks/save-kernel/check`, async (route) => {
      requests += 1;
      await held;
      await route.continue();
    });
    await button.click();
    await page.waitForFunction(() => document.querySelector("#task-save-kernel .check-button")?.disabled);
    assert.equal(await button.innerText(), "Checking…");
    for (let i = 0; i < 3; i++) await button.click({ force: true });
    await page.waitForTimeout(200);
    release();
    await task.locator(".check-results").waitFor();
    assert.equal(requests, 1, "one check sent for four presses");
    assert.equal(await task.getByRole("button", { name: "Check" }).innerText(), "Check");
    await page.unroute(`**${LESSON}/tasks/save-kernel/check`);

    // Pressed again and again, checks are rate-limited, in plain words.
    let notice = "";
    for (let i = 0; i < 8 && !/Too many/.test(notice); i++) {
      // The answer replaces the task's item, mark and all.
      await task.evaluate((item) => (item.dataset.answered = "no"));
      await task.getByRole("button", { name: "Check" }).click();
      await page.locator("#task-save-kernel:not([data-answered])").waitFor();
      notice = (await task.locator(".task-notice").count()) ? await task.locator(".task-notice").textContent() : "";
    }
    assert.match(notice, /^Too many checks; wait (1 second|[2-9] seconds) and check again$/);

    await stopLab(page);
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
  } finally {
    await context.close();
  }
});

test("an instructor sees the running labs, the gradebook by task title and times in their own zone", async () => {
  const { context: studentContext, page: studentPage } = await student("tasks-graded");
  await startLab(studentPage);
  await type(studentPage, "hostname > /root/hostname.txt");
  await studentPage.getByRole("button", { name: "Check" }).first().click();
  await studentPage.locator(".task.passed").first().waitFor();
  await studentPage.screenshot({ path: join(OUTPUT, "passed-task.png") });

  addUser(suite.dir, "tasks-teacher", "tasks-teacher password", "instructor");
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Asia/Tokyo" });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await logIn(page, suite.url, "tasks-teacher", "tasks-teacher password", "/");
  await page.getByRole("link", { name: "Teaching" }).click();
  await page.waitForURL(/\/teach$/);
  await page.getByRole("rowheader", { name: "tasks-graded" }).waitFor();
  await page.screenshot({ path: join(OUTPUT, "teach.png") });

  await page.locator(`a[href="${LESSON}/grades"]`).click();
  await page.getByRole("columnheader", { name: "Save the node's hostname in /root/hostname.txt" }).waitFor();
  const when = page.locator("td time.local-time").first();
  assert.match(await when.getAttribute("title"), / UTC$/, "the UTC time stays as the tooltip");
  assert.doesNotMatch(await when.textContent(), /UTC/, "shown in the viewer's zone");
  const tokyo = new Date(await when.getAttribute("datetime")).toLocaleString("en-US", {
    timeZone: "Asia/Tokyo", dateStyle: "medium", timeStyle: "medium",
  });
  assert.equal(await when.textContent(), tokyo, "the time is Tokyo's");
  await page.screenshot({ path: join(OUTPUT, "gradebook.png") });

  // The student's own terminal, live and read-only; the student is told.
  await page.getByRole("link", { name: "tasks-graded" }).click();
  await page.getByRole("link", { name: "Watch their lab live" }).click();
  await page.getByText("Watching live, read-only").waitFor();
  await type(studentPage, "echo live-$((6*7))");
  await page.waitForFunction(() => /live-42/.test(document.querySelector("#live-terminal .xterm-rows")?.textContent ?? ""));
  await studentPage.getByText("tasks-teacher is watching your terminal").waitFor({ timeout: 15_000 });
  await page.screenshot({ path: join(OUTPUT, "live.png") });

  // The instructor's pages on a phone: wide tables scroll in their box.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/teach", `${LESSON}/grades`, `${LESSON}/grades/tasks-graded`, `${LESSON}/grades/tasks-graded/live`]) {
    await page.goto(`${suite.url}${path}`);
    await assertNoSideways(page, path);
  }
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
  await context.close();
  await stopLab(studentPage);
  await studentContext.close();
});
