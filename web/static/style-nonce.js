// xterm.js creates <style> elements; the page's CSP admits those that
// carry its nonce. Loaded before xterm.js on the pages that show terminals.
"use strict";

(() => {
  const styleNonce = document.querySelector('meta[name="style-nonce"]')?.content ?? "";
  const createElement = Document.prototype.createElement;
  document.createElement = function (tag, options) {
    const element = createElement.call(this, tag, options);
    if (String(tag).toLowerCase() === "style") element.nonce = styleNonce;
    return element;
  };
})();
