// The Alimi operator console (services/intake/console.py serves it).
//
// Reads the intake API with the operator's key, which it keeps in sessionStorage
// (this tab only) and sends only in the Authorization header. Everything shown is
// built with textContent and createElement: no text from the API is parsed as HTML.
"use strict";

(() => {
  const KEY_ITEM = "alimi.console.key";
  const POLL_MS = 2000;
  const HISTORY = 60; // polls kept for the chart (two minutes)
  const SVG = "http://www.w3.org/2000/svg";
  // Each channel's line differs in colour AND dash pattern, and is labelled in text.
  const LINES = {
    kakao: { stroke: "#8a4b00", dash: "" },
    sms: { stroke: "#0b57d0", dash: "8 4" },
    slack: { stroke: "#3c3c3c", dash: "2 3" },
  };
  const OTHER_LINE = { stroke: "#5b2a86", dash: "12 3 3 3" };
  const STATUSES = [
    "claimed", "retrying", "sent", "delivered", "undelivered",
    "failed", "fell_back", "skipped", "halted",
  ];
  const REACHED = ["sent", "delivered", "undelivered"];

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let ticker = null;
  let generation = 0; // of the polling loop; a newer route stops the older loop
  let polls = []; // [{at, reached: {channel: n}}] of the incident on screen
  let shownIncident = null;
  let lastCounts = "";
  let deadlineAt = null;
  let nextCursor = null;
  let olderLoaded = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function say(text) {
    const box = $("message");
    box.replaceChildren(...(text ? [el("p", { class: "problem" }, text)] : []));
  }

  // -- the key --------------------------------------------------------------------------

  function takeKeyFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const key = params.get("key");
    if (!key) return;
    sessionStorage.setItem(KEY_ITEM, key);
    params.delete("key");
    const rest = params.toString();
    // Out of the address bar and the tab's history too.
    const hash = rest ? `#${rest}` : "";
    window.history.replaceState(null, "", location.pathname + location.search + hash);
  }

  function key() {
    return sessionStorage.getItem(KEY_ITEM);
  }

  function forget(message) {
    sessionStorage.removeItem(KEY_ITEM);
    stop();
    route();
    say(message || "");
  }

  // -- the API --------------------------------------------------------------------------

  class Refused extends Error {}

  async function api(path) {
    const resp = await fetch(path, {
      headers: { Authorization: `Bearer ${key()}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    if (resp.status === 401) {
      forget("The API key was refused (401): it is not valid or was revoked. Enter another.");
      throw new Refused();
    }
    if (!resp.ok) {
      let detail = "";
      try {
        detail = (await resp.json()).detail || "";
      } catch (_) {
        detail = "";
      }
      throw new Error(`${path}: ${resp.status} ${detail}`.trim());
    }
    return resp.json();
  }

  // -- formatting -----------------------------------------------------------------------

  function kst(iso) {
    const at = new Date(new Date(iso).getTime() + 9 * 3600 * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())} ` +
      `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} KST`;
  }

  function duration(seconds) {
    const s = Math.abs(Math.trunc(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return `${h} h ${String(m).padStart(2, "0")} min ${String(s % 60).padStart(2, "0")} s`;
  }

  function timeLeft(seconds) {
    return seconds >= 0 ? `${duration(seconds)} left` : `overdue by ${duration(seconds)}`;
  }

  function table(caption, head, rows, numeric) {
    const thead = el("thead", {}, el("tr", {}, ...head.map((h, i) =>
      el("th", { scope: "col", class: numeric(i) ? "n" : "" }, h))));
    const cell = (value, i) => (i === 0
      ? el("th", { scope: "row" }, value)
      : el("td", { class: numeric(i) ? "n" : "" }, value));
    const tbody = el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map(cell))));
    return el("table", {}, el("caption", {}, caption), thead, tbody);
  }

  // -- the incident list ----------------------------------------------------------------

  // Polling refreshes the newest page; "Older incidents" appends pages below it.
  async function showList(more, live) {
    const cursor = more ? nextCursor : null;
    const page = await api(
      `/v1/incidents?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (!live()) return;
    if (more || !olderLoaded) nextCursor = page.next_cursor;
    olderLoaded = olderLoaded || more;
    const rows = page.incidents.map((i) => [
      el("a", { href: `#incident=${encodeURIComponent(i.incident_id)}` }, i.title),
      i.severity,
      i.status,
      kst(i.created_at),
      `${kst(i.deadline)} (${timeLeft(i.seconds_left)})`,
      String(i.notices),
    ]);
    const shown = rows.length || more ? table(
      more ? "Older incidents" : "Incidents, newest first",
      ["Title", "Severity", "Status", "Opened", "Legal deadline", "Notices"],
      rows,
      (i) => i === 5,
    ) : el("p", {}, "No incidents yet.");
    if (more) $("list-older").append(shown);
    else $("list-newest").replaceChildren(shown);
    $("more").hidden = !nextCursor;
  }

  // -- one incident ---------------------------------------------------------------------

  function reachedByChannel(incident) {
    const reached = {};
    for (const notice of incident.notices) {
      for (const [channel, counts] of Object.entries(notice.counts_by_channel)) {
        if (channel === "none") continue;
        const n = REACHED.reduce((sum, s) => sum + (counts[s] || 0), 0);
        reached[channel] = (reached[channel] || 0) + n;
      }
    }
    return reached;
  }

  function renderFacts(incident) {
    const overdue = incident.overdue === true;
    const facts = [
      ["Status", incident.status],
      ["Severity", incident.severity],
      ["Discovered", kst(incident.discovered_at)],
      ["Legal deadline (72 h after discovery)", kst(incident.deadline) +
        (overdue ? `: passed, overdue by ${duration(incident.overdue_by_s)}` : "")],
      ["People", `${incident.people}`],
      ["Recipients notified", `${incident.notified} of ${incident.recipients} ` +
        `(${(incident.notified_share * 100).toFixed(1)} %)`],
      ["Regulator report due", incident.regulator_report_note ||
        incident.regulator_report_due.join(", ") || "no"],
    ];
    // A passed deadline is said in words first, not only by a countdown's sign.
    const warning = overdue && incident.deadline_note
      ? [el("p", { class: "problem", id: "overdue" }, incident.deadline_note)] : [];
    $("incident-facts").replaceChildren(...warning, el("dl", {}, ...facts.flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", {}, v)])));
  }

  function renderCounts(incident) {
    const parts = [];
    for (const notice of incident.notices) {
      const channels = Object.keys(notice.counts_by_channel).sort();
      parts.push(el("h4", {}, `Notice ${notice.seq}: ${notice.state.replace(/_/g, " ")}`));
      parts.push(el("p", {},
        `${notice.people} people: ${notice.recipients} recipients, ${notice.merged} merged ` +
        `onto a number they share; skipped: ${notice.skipped_no_phone} without a phone, ` +
        `${notice.skipped_unreachable} unreachable`));
      if (!channels.length) {
        parts.push(el("p", {}, "No receipts yet."));
        continue;
      }
      const used = STATUSES.filter((s) => channels.some((c) => notice.counts_by_channel[c][s]));
      const rows = channels.map((c) => [
        c, ...used.map((s) => String(notice.counts_by_channel[c][s] || 0)),
        String(notice.fell_back[c] || 0),
      ]);
      parts.push(table(
        `Notice ${notice.seq}: receipts per channel and status`,
        ["Channel", ...used.map((s) => s.replace(/_/g, " ")), "fell back to another"],
        rows,
        (i) => i > 0,
      ));
    }
    // Only touch the live region when something changed, so screen readers hear news only.
    const signature = JSON.stringify(incident.notices.map((n) =>
      [n.state, n.counts_by_channel, n.fell_back]));
    if (signature !== lastCounts) {
      lastCounts = signature;
      $("counts-body").replaceChildren(...parts);
    }
  }

  function clock(ms) {
    return kst(new Date(ms).toISOString()).slice(11, 16);
  }

  // One line per channel, from the first poll on screen (left) to the latest (right).
  function renderChart() {
    const width = 640;
    const height = 220;
    const pad = { left: 48, right: 96, top: 14, bottom: 30 };
    const channels = [...new Set(polls.flatMap((p) => Object.keys(p.reached)))].sort();
    const top = Math.max(1, ...polls.flatMap((p) => Object.values(p.reached)));
    const first = polls.length ? polls[0].at : Date.now();
    const span = Math.max(POLL_MS, (polls.length ? polls[polls.length - 1].at : first) - first);
    const x = (at) => pad.left + ((at - first) / span) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);
    const latest = polls.length ? polls[polls.length - 1].reached : {};
    const summary = channels.map((c) => `${c} ${latest[c] || 0}`).join(", ") || "nothing yet";
    const small = { "font-size": "12", fill: "#4a4a4a" };
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width: String(width), height: String(height),
      role: "img", "aria-labelledby": "chart-title chart-desc",
    });
    chart.append(
      svg("title", { id: "chart-title" }, "People reached per channel since this view opened"),
      svg("desc", { id: "chart-desc" }, `Latest: ${summary}.`),
      svg("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), stroke: "#6b6b6b" }),
      svg("line", { x1: pad.left, y1: y(0), x2: pad.left, y2: pad.top, stroke: "#6b6b6b" }),
      svg("text", { ...small, x: pad.left - 6, y: y(top) + 4, "text-anchor": "end" }, String(top)),
      svg("text", { ...small, x: pad.left - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
      svg("text", { ...small, x: pad.left, y: height - 8 }, clock(first)),
      svg("text", { ...small, x: width - pad.right, y: height - 8, "text-anchor": "end" }, "now"),
    );
    // Labels at each line's end, pushed apart when the lines end close together.
    const ends = channels.map((c) => ({ c, y: y(latest[c] || 0) })).sort((a, b) => a.y - b.y);
    ends.forEach((end, i) => {
      if (i > 0) end.y = Math.max(end.y, ends[i - 1].y + 15);
    });
    for (const { c: channel, y: labelY } of ends) {
      const line = LINES[channel] || OTHER_LINE;
      const points = polls.map((p) => `${x(p.at).toFixed(1)},${y(p.reached[channel] || 0)}`);
      const endX = x(polls[polls.length - 1].at);
      chart.append(
        svg("polyline", {
          points: points.join(" "), fill: "none", stroke: line.stroke, "stroke-width": "2.5",
          "stroke-dasharray": line.dash, "data-channel": channel,
        }),
        svg("circle", { cx: endX, cy: y(latest[channel] || 0), r: "3.5", fill: line.stroke }),
        svg("text", {
          x: endX + 8, y: labelY + 4, "font-size": "13", fill: line.stroke, "data-channel": channel,
        }, `${channel} ${latest[channel] || 0}`),
      );
    }
    $("chart").replaceChildren(chart, el("p", { class: "note" },
      `One poll every ${POLL_MS / 1000} s, the last ${HISTORY} kept; latest: ${summary}.`));
  }

  async function renderDeadLetters(incident, live) {
    const parts = [];
    for (const notice of incident.notices) {
      let dead = null;
      try {
        dead = await api(`/v1/notices/${encodeURIComponent(notice.notice_id)}/dead-letters`);
      } catch (err) {
        if (err instanceof Refused) throw err;
      }
      if (dead) {
        const channels = Object.entries(dead.by_channel || {});
        parts.push(el("p", {}, `Notice ${notice.seq}: ${dead.total} given up on` +
          (channels.length ? ` (${channels.map(([c, n]) => `${c} ${n}`).join(", ")})` : "")));
        if (dead.last_errors && dead.last_errors.length) {
          parts.push(el("ul", {}, ...dead.last_errors.map((e) =>
            el("li", {}, `${e.channel}: ${e.error || "no error recorded"} (${e.count}×` +
              `${e.last_at ? `, last ${kst(e.last_at)}` : ""})`))));
        }
      } else {
        // No dead-letter view: the failed receipts are the people given up on.
        const failed = Object.entries(notice.counts_by_channel)
          .map(([c, counts]) => [c, counts.failed || 0]).filter(([, n]) => n);
        const total = failed.reduce((sum, [, n]) => sum + n, 0);
        parts.push(el("p", {}, `Notice ${notice.seq}: ${total} failed` +
          (failed.length ? ` (${failed.map(([c, n]) => `${c} ${n}`).join(", ")})` : "")));
      }
    }
    if (live()) $("dead-letters").replaceChildren(...parts);
  }

  function tick() {
    if (deadlineAt === null) return;
    const left = (deadlineAt - Date.now()) / 1000;
    const box = $("countdown");
    box.textContent = `Legal deadline: ${timeLeft(left)}`;
    box.classList.toggle("overdue", left < 0);
  }

  async function showIncident(id, live) {
    const incident = await api(`/v1/incidents/${encodeURIComponent(id)}`);
    if (!live()) return;
    if (shownIncident !== id) {
      shownIncident = id;
      polls = [];
      lastCounts = "";
    }
    $("incident-h").textContent = incident.title;
    document.title = `${incident.title} · Alimi console`;
    deadlineAt = Date.now() + incident.seconds_left * 1000;
    tick();
    renderFacts(incident);
    renderCounts(incident);
    polls.push({ at: Date.now(), reached: reachedByChannel(incident) });
    polls = polls.slice(-HISTORY);
    renderChart();
    await renderDeadLetters(incident, live);
  }

  // -- routing and polling --------------------------------------------------------------

  function stop() {
    generation += 1;
    clearTimeout(timer);
    clearInterval(ticker);
    timer = null;
    ticker = null;
  }

  function poll(load) {
    stop();
    const mine = ++generation;
    const live = () => mine === generation;
    const run = async () => {
      try {
        await load(live);
        if (live()) say("");
      } catch (err) {
        if (err instanceof Refused) return;
        if (live()) say(`Could not refresh: ${err.message}`);
      }
      if (live() && key()) timer = setTimeout(run, POLL_MS);
    };
    return run();
  }

  function route(moveFocus) {
    const signedIn = Boolean(key());
    const id = new URLSearchParams(location.hash.slice(1)).get("incident");
    $("key-section").hidden = signedIn;
    $("forget").hidden = !signedIn;
    $("list-section").hidden = !signedIn || Boolean(id);
    $("incident-section").hidden = !signedIn || !id;
    if (!signedIn) {
      document.title = "Alimi console";
      return;
    }
    if (id) {
      poll((live) => showIncident(id, live));
      ticker = setInterval(tick, 1000);
      if (moveFocus) $("incident-h").focus();
    } else {
      shownIncident = null;
      deadlineAt = null;
      olderLoaded = false;
      $("list-older").replaceChildren();
      document.title = "Incidents · Alimi console";
      poll((live) => showList(false, live));
      if (moveFocus) $("list-h").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeKeyFromFragment();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("key-input");
      const value = input.value.trim();
      input.value = "";
      if (!value) return;
      sessionStorage.setItem(KEY_ITEM, value);
      say("");
      route(true);
    });
    $("forget").addEventListener("click", () => forget("The key is forgotten."));
    $("more").addEventListener("click", () => {
      const mine = generation;
      showList(true, () => mine === generation).catch((err) => {
        if (!(err instanceof Refused)) say(err.message);
      });
    });
    window.addEventListener("hashchange", () => {
      takeKeyFromFragment();
      route(true);
    });
    route();
  });
})();
