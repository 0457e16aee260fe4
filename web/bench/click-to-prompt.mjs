// Click to prompt: how long a student waits between pressing Start lab and
// a shell prompt in the terminal, in Debian's Chromium, beside the time the
// server itself takes to make the lab ready (from its log), both measured
// in this run on loopback.
//
//   LAYERLAB_BIN=…/layerlab node bench/click-to-prompt.mjs   (part of `make bench`;
//   LAYERLAB_BENCH_RUNS sets the number of labs, 15 by default)
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addUser, launchBrowser, logIn, startServer, stopServer } from "../tests/harness.mjs";

const RUNS = Number(process.env.LAYERLAB_BENCH_RUNS ?? 15);
const LESSON = "/lessons/01-what-is-a-container";
// bash's prompt on the node, as the terminal shows it.
const PROMPT = /root@node1:[^\n]*# ?$/m;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const figure = (values) =>
  `median ${median(values).toFixed(0)} ms (min ${Math.min(...values).toFixed(0)}, max ${Math.max(...values).toFixed(0)})`;

const dir = mkdtempSync(join(tmpdir(), "layerlab-bench-browser-"));
addUser(dir, "bencher", "bencher password");
const browser = await launchBrowser();
const server = await startServer(dir, "bench-browser", (7 << 28) + 12 * 65536, ["--log-format", "json"]);
const clicks = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  await logIn(page, server.url, "bencher", "bencher password", LESSON);
  // One lab first, unmeasured: the page's scripts and the node's image are
  // warm for every measured run, as for a student on their second lab.
  for (let run = 0; run <= RUNS; run++) {
    await page.getByRole("button", { name: "Start lab" }).waitFor();
    // The clock starts in the page, at the click event itself.
    await page.evaluate(() => {
      document.addEventListener("click", () => (window.benchClick = performance.now()), { capture: true, once: true });
    });
    await page.getByRole("button", { name: "Start lab" }).click();
    const took = await page.waitForFunction(
      (source) =>
        new RegExp(source, "m").test(window.layerlab.terminalText?.() ?? "") && performance.now() - window.benchClick,
      PROMPT.source,
      { polling: 1, timeout: 60_000 },
    );
    if (run > 0) clicks.push(await took.jsonValue());
    await page.getByRole("button", { name: "Stop", exact: true }).click();
  }
} finally {
  await browser.close();
  await stopServer(server.child, "bench-browser");
}
const ready = server
  .log()
  .split("\n")
  .filter((line) => line.includes('"lab ready"'))
  .map((line) => JSON.parse(line).took_ms)
  .filter((ms) => typeof ms === "number")
  .slice(1);
console.log(`click to prompt: ${RUNS} labs started from the lesson page in Chromium`);
console.log(`  browser, click to prompt:  ${figure(clicks)}`);
console.log(`  server, start to ready:    ${ready.length ? figure(ready) : "not in this server's log"}`);
