// What the browser suites share: the real layerlab binary on a free port,
// accounts made with its CLI, and Debian's Chromium through playwright-core.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const BIN = process.env.LAYERLAB_BIN;
export const OUTPUT = process.env.LAYERLAB_TEST_OUTPUT ?? join(tmpdir(), "layerlab-test-output");
const CHROMIUM = "/usr/bin/chromium";
// The catalog the server's tests build and share (images build is cached).
const CATALOG = "/var/tmp/layerlab/test-data";

// Labs from the shared catalog, under a cgroup parent and uid range of
// their own so nothing collides with other servers on the machine (the
// Rust suites reserve blocks in regions below 7 << 28; each browser server
// takes a block of 4 slots from `uidFirst`).
// `extra` may name another --store-dir.
export function startServer(dir, name, uidFirst, extra = []) {
  return new Promise((resolve, reject) => {
    const args = [
      "serve", "--listen", "127.0.0.1:0", "--data-dir", dir,
      ...(extra.includes("--store-dir") ? [] : ["--store-dir", join(CATALOG, "store")]),
      "--cgroup-parent", `layerlab-${name}-${process.pid}`,
      "--lab-uid-first", String(uidFirst), "--lab-uid-slots", "4",
      ...extra,
    ];
    const child = spawn(BIN, args, {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60_000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = log.match(/listening on (http:\/\/[^\s"]+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1], log: () => log });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
}

// A store in `dir` holding the shared catalog's blobs (hard links) but not
// the images that carry the layerlab binary (registry:2, workstation), nor
// that layer: a server on it must build them. The build cache and package
// repository are copied, so all else comes from the cache.
export function storeWithoutNodeImage(dir) {
  const source = join(CATALOG, "store");
  const { names } = JSON.parse(readFileSync(join(source, "names/hub.json"), "utf8"));
  const blob = (digest) => join(source, "content/blobs/sha256", digest.replace("sha256:", ""));
  const manifest = JSON.parse(readFileSync(blob(names["docker.io/library/workstation:latest"]), "utf8"));
  const binaryLayer = manifest.layers.at(-1).digest.replace("sha256:", "");
  const blobs = join(dir, "store/content/blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  for (const file of readdirSync(join(source, "content/blobs/sha256"))) {
    if (file !== binaryLayer) linkSync(join(source, "content/blobs/sha256", file), join(blobs, file));
  }
  const kept = Object.fromEntries(
    Object.entries(names).filter(([name]) => !name.includes("/workstation:") && !name.includes("/registry:")),
  );
  mkdirSync(join(dir, "store/names"));
  writeFileSync(join(dir, "store/names/hub.json"), JSON.stringify({ names: kept }));
  mkdirSync(join(dir, "cache"));
  for (const from of ["cache/images", "packages"]) {
    const copy = spawnSync("cp", ["-a", join(CATALOG, from), join(dir, from)]);
    assert.equal(copy.status, 0, `cp -a ${from}: ${copy.stderr}`);
  }
  return join(dir, "store");
}

// A suite's browser and server, there from before its first test to after
// its last: `suite.browser`, `suite.url`, and `suite.dir` for its accounts.
export function suiteServer(name, uidFirst, extra = []) {
  const suite = { dir: mkdtempSync(join(tmpdir(), `layerlab-${name}-`)) };
  before(async () => {
    suite.browser = await launchBrowser();
    const { child, url } = await startServer(suite.dir, name, uidFirst, extra);
    suite.child = child;
    suite.url = url;
  });
  after(async () => {
    await suite.browser?.close();
    if (suite.child) await stopServer(suite.child, name);
  });
  return suite;
}

export function addUser(dir, name, password, role = "student") {
  const add = spawnSync(BIN, ["user", "add", name, "--role", role, "--password-stdin", "--data-dir", dir], {
    input: `${password}\n`,
  });
  assert.equal(add.status, 0, `user add failed: ${add.stderr}`);
}

export async function stopServer(child, name) {
  child.kill("SIGTERM");
  await new Promise((resolve) => (child.exitCode === null ? child.on("exit", resolve) : resolve()));
  for (const controller of readdirSync("/sys/fs/cgroup")) {
    try {
      rmdirSync(join("/sys/fs/cgroup", controller, `layerlab-${name}-${process.pid}`));
    } catch {
      // Not every controller got the directory.
    }
  }
}

export async function logIn(page, url, name, password, next) {
  await page.goto(`${url}/login?next=${next}`);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL((u) => u.pathname === next);
}

// Checks the binary and Chromium are there, brings the shared catalog up to
// date, and launches the browser.
export async function launchBrowser() {
  assert.ok(BIN && existsSync(BIN), "LAYERLAB_BIN must point at the layerlab binary (make browser sets it)");
  assert.ok(existsSync(CHROMIUM), "Debian's chromium is required: apt-get install chromium");
  mkdirSync(OUTPUT, { recursive: true });
  const images = spawnSync(BIN, ["images", "build", "--data-dir", CATALOG], { stdio: ["ignore", "ignore", "pipe"] });
  assert.equal(images.status, 0, `the catalog could not be built: ${images.stderr}`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    // playwright gives every launch a fresh, empty profile of its own.
  });
}

// Script errors, console errors (CSP violations, htmx errors) and failed
// loads of the page, collected for a final `assert.deepEqual(errors, [])`.
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  return errors;
}

// Waits until the terminal in front shows text matching `pattern`.
export function waitForScreen(page, pattern, timeout = 30_000) {
  return page.waitForFunction((source) => new RegExp(source).test(window.layerlab.terminalText()), pattern.source, {
    timeout,
  });
}

// Start lab on a lesson page, until its shell shows; Stop, until the pane
// offers a new start.
export async function startLab(page) {
  await page.getByRole("button", { name: "Start lab" }).click();
  await page.locator("#lab-status[data-state=ready]").waitFor({ timeout: 120_000 });
  await waitForScreen(page, /node1/);
}

export async function stopLab(page) {
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.getByRole("button", { name: "Start lab" }).waitFor();
}

// No page is wider than the screen.
export async function assertNoSideways(page, what) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `${what} scrolls sideways: ${scroll} px wide on a ${width} px screen`);
}
