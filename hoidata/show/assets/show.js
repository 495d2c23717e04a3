// hoidata show: highlighting, layer switches, search within the page, keyboard paging. No network.
"use strict";
(function () {
  function ids(el) {
    return (el.getAttribute("data-hl") || "").split(" ").filter(Boolean);
  }
  function related(card, el) {
    // what lights up with el: the ids it names, its own id, and every element naming that id
    const wanted = new Set(ids(el));
    const own = el.getAttribute("data-id");
    if (own) wanted.add(own);
    const out = [el];
    card.querySelectorAll("[data-id]").forEach(function (x) {
      if (wanted.has(x.getAttribute("data-id"))) out.push(x);
    });
    if (own) {
      card.querySelectorAll("[data-hl]").forEach(function (x) {
        if (ids(x).indexOf(own) >= 0) out.push(x);
      });
    }
    return out;
  }
  function mark(card, el, cls, on) {
    related(card, el).forEach(function (x) { x.classList.toggle(cls, on); });
  }
  document.querySelectorAll(".card").forEach(function (card) {
    card.querySelectorAll("[data-hl], .box[data-id], .boxref[data-id]").forEach(function (el) {
      el.addEventListener("mouseenter", function () { mark(card, el, "hl", true); });
      el.addEventListener("mouseleave", function () { mark(card, el, "hl", false); });
      el.addEventListener("click", function (ev) {
        const pinned = !el.classList.contains("pin");
        card.querySelectorAll(".pin").forEach(function (x) { x.classList.remove("pin"); });
        if (pinned) mark(card, el, "pin", true);
        ev.stopPropagation();
      });
    });
  });
  // layer switches: a checkbox with data-layer="show-union" toggles that class on <body>
  function store(key, value) {
    try { window.localStorage.setItem("hoidata-show:" + key, value ? "1" : "0"); } catch (e) { /* file:// may refuse */ }
  }
  function stored(key) {
    try { return window.localStorage.getItem("hoidata-show:" + key); } catch (e) { return null; }
  }
  document.querySelectorAll("input[data-layer]").forEach(function (box) {
    const layer = box.getAttribute("data-layer");
    const saved = stored(layer);
    if (saved !== null) box.checked = saved === "1";
    const apply = function () {
      const on = box.checked !== (box.getAttribute("data-invert") === "1");
      document.body.classList.toggle(layer, on);
    };
    apply();
    box.addEventListener("change", function () { store(layer, box.checked); apply(); });
  });
  // search within the page: hides the cards whose text does not contain every word
  const find = document.getElementById("find");
  const count = document.getElementById("find-count");
  if (find) {
    find.addEventListener("input", function () {
      const words = find.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      document.querySelectorAll(".card").forEach(function (card) {
        const text = card.textContent.toLowerCase();
        const hit = words.every(function (w) { return text.indexOf(w) >= 0; });
        card.classList.toggle("hidden", !hit);
        if (hit) shown += 1;
      });
      if (count) count.textContent = words.length ? shown + " shown" : "";
    });
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.target && (ev.target.tagName === "INPUT" || ev.target.tagName === "TEXTAREA")) return;
    const rel = ev.key === "ArrowLeft" ? "prev" : ev.key === "ArrowRight" ? "next" : null;
    const link = rel && document.querySelector("nav.pager a[rel=" + rel + "]");
    if (link) window.location.href = link.href;
  });
})();
