// Copies the browser files of our npm dependencies into static/vendor, from
// where the server embeds them: nothing is ever loaded from a CDN.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(dirname(fileURLToPath(import.meta.url)));
const files = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["@xterm/xterm/lib/xterm.js", "xterm.js"],
  ["@xterm/xterm/css/xterm.css", "xterm.css"],
  ["@xterm/addon-fit/lib/addon-fit.js", "addon-fit.js"],
  ["@xterm/addon-web-links/lib/addon-web-links.js", "addon-web-links.js"],
];
mkdirSync(join(web, "static", "vendor"), { recursive: true });
for (const [from, to] of files) {
  copyFileSync(join(web, "node_modules", from), join(web, "static", "vendor", to));
}
