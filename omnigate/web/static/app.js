// Live character and part counter of the Send page. It follows omnigate/sms/segment.py
// and gsm.py exactly (tests/web compares them in the browser): GSM 03.38 default alphabet
// with the extension table (two septets each), 160/153 septets, a part never ends between
// ESC and its code; otherwise UCS-2 in UTF-16 code units, 70/67, never between a surrogate pair.
"use strict";
(function () {
  const BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  const EXTENSION = "\f^{}\\[~]|€";
  const ESC = 27;

  function ends(units, single, multi, splitsPair) {
    const n = units.length;
    if (n <= single) return 1;
    let parts = 0;
    for (let start = 0; start < n; parts++) {
      let end = start + multi;
      if (end >= n) end = n;
      else if (splitsPair(units, end)) end -= 1;
      start = end;
    }
    return parts;
  }

  function count(text) {
    const septets = [];
    let gsm = true;
    for (const ch of text) {
      if (BASIC.includes(ch)) septets.push(0);
      else if (EXTENSION.includes(ch)) septets.push(ESC, 0);
      else { gsm = false; break; }
    }
    if (gsm) {
      const parts = ends(septets, 160, 153, (u, end) => u[end - 1] === ESC);
      return {coding: "GSM 7-bit", units: septets.length, parts: parts,
              perPart: parts === 1 ? 160 : 153};
    }
    const units = [];
    for (let i = 0; i < text.length; i++) units.push(text.charCodeAt(i));
    const parts = ends(units, 70, 67, (u, end) => u[end - 1] >= 0xD800 && u[end - 1] <= 0xDBFF);
    return {coding: "UCS-2", units: units.length, parts: parts, perPart: parts === 1 ? 70 : 67};
  }
  window.omnigateCount = count;

  function describe(c) {
    const unit = c.coding === "UCS-2" ? "characters" : "characters (septets)";
    return c.units + " " + unit + " · " + c.parts + " part" + (c.parts === 1 ? "" : "s") +
      " · " + c.coding;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const text = document.getElementById("text");
    const counter = document.getElementById("counter");
    if (!text || !counter) return;
    const update = () => {
      const c = count(text.value);
      counter.textContent = describe(c);
      counter.dataset.parts = c.parts;
      counter.dataset.coding = c.coding;
    };
    text.addEventListener("input", update);
    update();
  });
})();
