// The Aisle console's behaviour: actions call the documented /v1/admin API
// (with the session's CSRF token), the overview refreshes itself, and the
// search page's box shows results with their explanations. Text from the
// server is set with textContent only: nothing here parses HTML.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.getAttribute("content") : null;
  const status = document.getElementById("status");

  function say(text, failed) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("failed", !!failed);
  }

  async function call(method, url, body) {
    const headers = { "accept": "application/json" };
    if (csrf) headers["x-csrf-token"] = csrf;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try { json = await r.json(); } catch (e) { json = null; }
    if (!r.ok) {
      const msg = json && json.error ? json.error.message + " (" + json.error.code + ")" : "HTTP " + r.status;
      throw new Error(msg);
    }
    return json;
  }

  // A button that acts asks once more: the first press arms it for 5 s.
  function armed(b) {
    if (!b.dataset.confirm) return true;
    if (b.dataset.armed) return true;
    b.dataset.armed = "1";
    b.dataset.label = b.textContent;
    b.textContent = b.dataset.confirm + " Press again";
    setTimeout(function () {
      if (b.dataset.armed) { delete b.dataset.armed; b.textContent = b.dataset.label; }
    }, 5000);
    return false;
  }

  async function act(b) {
    if (!armed(b)) return;
    delete b.dataset.armed;
    if (b.dataset.label) b.textContent = b.dataset.label;
    b.disabled = true;
    try {
      const body = b.dataset.body ? JSON.parse(b.dataset.body) : undefined;
      const out = await call(b.dataset.method || "POST", b.dataset.api, body);
      say("Done: " + summary(out));
      setTimeout(function () { location.reload(); }, 700);
    } catch (e) {
      say("Refused: " + e.message, true);
      b.disabled = false;
    }
  }

  function summary(out) {
    if (!out) return "ok";
    if (out.serving) return "serving " + out.serving.name + " " + out.serving.version;
    if (out.name) return "experiment " + out.name + (out.running ? " running" : " stopped");
    if (out.job_id !== undefined) return "job " + out.job_id + " queued";
    return "ok";
  }

  // Fields named a.0.b become {"a": [{"b": ...}]}; number inputs are numbers; empty optional fields are left out.
  function formJson(f) {
    const out = {};
    for (const el of f.elements) {
      if (!el.name || el.disabled) continue;
      let v = el.value;
      if (v === "" && !el.required) continue;
      if (el.type === "number") v = Number(v);
      const path = el.name.split(".");
      let o = out;
      for (let i = 0; i < path.length - 1; i++) {
        const k = /^\d+$/.test(path[i]) ? Number(path[i]) : path[i];
        if (o[k] === undefined) o[k] = /^\d+$/.test(path[i + 1]) ? [] : {};
        o = o[k];
      }
      o[path[path.length - 1]] = v;
    }
    return out;
  }

  document.addEventListener("click", function (ev) {
    const b = ev.target.closest("button[data-api]");
    if (!b) return;
    ev.preventDefault();
    act(b);
  });

  document.addEventListener("submit", async function (ev) {
    const f = ev.target.closest("form[data-api]");
    if (!f) return;
    ev.preventDefault();
    const button = f.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const out = await call(f.dataset.method || "POST", f.dataset.api, formJson(f));
      say("Done: " + summary(out));
      setTimeout(function () { location.reload(); }, 700);
    } catch (e) {
      say("Refused: " + e.message, true);
      if (button) button.disabled = false;
    }
  });

  // The overview refreshes its numbers every 5 s from GET /v1/admin/overview.
  function fmt(n) { return Number(n).toLocaleString("en-US"); }
  function setText(id, text) { const el = document.getElementById(id); if (el) el.textContent = text; }
  function redraw(id, values) {
    const svg = document.getElementById(id);
    if (!svg) return;
    const max = Math.max(1, ...values), w = 600 / Math.max(1, values.length);
    const rects = svg.querySelectorAll("rect");
    values.forEach(function (v, i) {
      const r = rects[i]; if (!r) return;
      const h = Math.max(v > 0 ? 2 : 0, v / max * 96);
      r.setAttribute("y", (100 - h).toFixed(1));
      r.setAttribute("height", h.toFixed(1));
      const t = r.querySelector("title"); if (t) t.textContent = String(v);
    });
  }
  if (document.getElementById("events-chart")) {
    setInterval(async function () {
      try {
        const o = await call("GET", "/v1/admin/overview");
        setText("catalog-items", fmt(o.catalog_items));
        setText("users", fmt(o.users));
        setText("active-users", fmt(o.active_users));
        setText("events", fmt(o.events));
        setText("events-ingested", fmt(o.events_ingested));
        setText("requests-last-minute", fmt(o.requests_last_minute));
        redraw("events-chart", o.per_minute.map(function (m) { return m.events; }));
        redraw("requests-chart", o.per_minute.map(function (m) { return m.requests; }));
      } catch (e) { /* the next tick tries again */ }
    }, 5000);
  }

  // The search page's live box.
  const live = document.getElementById("live-search");
  if (live) {
    live.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const q = live.elements.q.value.trim();
      const user = live.elements.user.value.trim();
      const list = document.getElementById("live-results");
      list.replaceChildren();
      if (!q) return;
      const params = new URLSearchParams({ q: q, k: "10" });
      if (user) params.set("user", user);
      try {
        const r = await call("GET", "/v1/search?" + params.toString());
        // How the query was read (the same for every hit), above the list.
        let readEl = document.getElementById("live-read");
        if (!readEl) {
          readEl = document.createElement("p");
          readEl.id = "live-read";
          readEl.className = "why";
          list.before(readEl);
        }
        readEl.textContent = "";
        const intent = r.results.length && r.results[0].why ? r.results[0].why.intent : null;
        if (intent) {
          const read = [];
          read.push("read as " + intent.class + ": keyword words \u201c" + intent.keyword_query + "\u201d");
          if (intent.ignored && intent.ignored.length) read.push("left out: " + intent.ignored.join(", "));
          if (intent.corrected && intent.corrected.length) read.push("corrected: " + intent.corrected.map(function (c) { return c[0] + " \u2192 " + c[1]; }).join(", "));
          if (intent.price_max != null) read.push("price \u2264 " + intent.price_max);
          if (intent.price_min != null) read.push("price \u2265 " + intent.price_min);
          if (intent.cheap) read.push("cheap first");
          for (const k of ["colours", "materials", "categories"]) {
            if (intent[k] && intent[k].length) read.push(k + ": " + intent[k].join(", "));
          }
          const w = r.results[0].why.weights;
          if (w) read.push("weights keyword " + w.keyword + " / semantic " + w.semantic);
          readEl.textContent = read.join(" \u00b7 ");
        }
        if (!r.results.length) {
          const li = document.createElement("li");
          li.textContent = "No results.";
          list.appendChild(li);
        }
        for (const h of r.results) {
          const li = document.createElement("li");
          const title = document.createElement("strong");
          title.textContent = h.title || h.item_id;
          const why = document.createElement("div");
          why.className = "why";
          const parts = [];
          if (h.why && h.why.matched && h.why.matched.length) parts.push("matched: " + h.why.matched.join(", "));
          if (h.why && h.why.semantic) parts.push("semantic cosine " + Number(h.why.semantic.cosine).toFixed(3) + " (rank " + h.why.semantic.rank + ")");
          if (h.why && h.why.approximate && h.why.approximate.length) parts.push("approximate: " + h.why.approximate.join(", "));
          if (h.why && h.why.personal) parts.push("personal boost " + Number(h.why.personal.boost).toFixed(3));
          if (h.also && h.also.length) parts.push(h.also.length + " more with the same title: " + h.also.join(", "));
          parts.push("score " + Number(h.score).toFixed(3));
          why.textContent = parts.join(" · ");
          li.append(title, " ", Object.assign(document.createElement("code"), { textContent: h.item_id }), why);
          list.appendChild(li);
        }
      } catch (e) {
        say("Search refused: " + e.message, true);
      }
    });
  }
})();
