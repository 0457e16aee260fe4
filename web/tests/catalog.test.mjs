// Browser test of a server whose store lacks catalog images: the pages
// follow the build live, and a lab started meanwhile waits, then runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OUTPUT, addUser, launchBrowser, logIn, startServer, stopServer, storeWithoutNodeImage, waitForScreen, watchErrors } from "./harness.mjs";

// uid block: (7 << 28) + 24 * 65536, 4 slots; no other suite uses it.
const UID_FIRST = (7 << 28) + 24 * 65536;
const LESSON = "/lessons/01-what-is-a-container";
const dir = mkdtempSync(join(tmpdir(), "layerlab-browser-catalog-"));
let browser;
let server;

before(async () => {
  // Brings the shared catalog up to date first: the store copies it.
  browser = await launchBrowser();
  const store = storeWithoutNodeImage(dir);
  addUser(dir, "early", "early password");
  server = await startServer(dir, "browser-catalog", UID_FIRST, ["--store-dir", store]);
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server.child, "browser-catalog");
});

test("the pages follow the catalog build, and a lab started during it waits and then runs", async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  try {
    await logIn(page, server.url, "early", "early password", LESSON);
    const banner = page.locator("#catalog-banner");
    const first = await banner.textContent();
    assert.match(first, /Preparing lab images: [a-z-]+ \d\/7/);

    await page.getByRole("button", { name: "Start lab" }).click();
    const waiting = page.locator(".lab-progress");
    await waiting.waitFor();
    assert.match(await waiting.textContent(), /Waiting for lab images \([a-z -]+ \d\/7\)/);
    await page.screenshot({ path: join(OUTPUT, "lab-waiting-for-images.png"), fullPage: false });

    // The banner moves on by itself as the build does, then goes.
    await page.waitForFunction((before) => document.querySelector("#catalog-banner")?.textContent !== before, first, {
      timeout: 120_000,
    });
    await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 300_000 });
    await waitForScreen(page, /node1/);
    await page.locator("#catalog-banner[hidden]").waitFor({ state: "attached", timeout: 120_000 });
    assert.match(server.log(), /preparing catalog image image=workstation i=6 n=7/);
    assert.deepEqual(errors, [], "no script errors and no CSP violations");
    await page.getByRole("button", { name: "Stop", exact: true }).click();
    await page.getByRole("button", { name: "Start lab" }).waitFor();
  } finally {
    await context.close();
  }
});
