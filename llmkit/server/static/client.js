// llmkit relay chat client (lesson 9, 09_sse_server).
// Streams an answer from the relay server with fetch() + a small SSE parser (EventSource cannot send an
// Authorization header), reconnects with exponential backoff and Last-Event-ID, shows retry status,
// cancels with DELETE, and renders markdown by building DOM nodes with textContent: model output is
// never assigned to innerHTML. In production, a sanitizer such as DOMPurify behind a markdown library
// (marked, markdown-it) does the same job for richer markdown.
"use strict";

(() => {
  const TERMINAL = new Set(["done", "error", "cancelled"]);
  const MAX_RECONNECTS = 8;

  // --- safe markdown: paragraphs, bullet lists, fenced code, **bold**, *em*, `code` --------------------
  function inline(parent, text) {
    const pattern = /(\*\*[^*]+\*\*|`[^`]+`|\*[^*\s][^*]*\*)/g;
    let last = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      const token = m[0];
      let el;
      if (token.startsWith("**")) { el = document.createElement("strong"); el.textContent = token.slice(2, -2); }
      else if (token.startsWith("`")) { el = document.createElement("code"); el.textContent = token.slice(1, -1); }
      else { el = document.createElement("em"); el.textContent = token.slice(1, -1); }
      parent.append(el);
      last = m.index + token.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  function renderMarkdown(target, source) {
    const nodes = [];
    const lines = source.split("\n");
    let para = null, list = null, code = null;
    const flush = () => { para = null; list = null; };
    for (const line of lines) {
      if (code) {
        if (line.startsWith("```")) { code = null; } else { code.textContent += line + "\n"; }
        continue;
      }
      if (line.startsWith("```")) {
        flush();
        const pre = document.createElement("pre");
        code = document.createElement("code");
        pre.append(code);
        nodes.push(pre);
        continue;
      }
      const item = line.match(/^\s*[-*]\s+(.*)$/);
      if (item) {
        para = null;
        if (!list) { list = document.createElement("ul"); nodes.push(list); }
        const li = document.createElement("li");
        inline(li, item[1]);
        list.append(li);
      } else if (line.trim() === "") {
        flush();
      } else {
        list = null;
        if (!para) { para = document.createElement("p"); nodes.push(para); } else { para.append(document.createElement("br")); }
        inline(para, line);
      }
    }
    target.replaceChildren(...nodes);
  }

  // --- SSE over fetch --------------------------------------------------------------------------------
  // Parses the event stream as the spec says: fields per line, a blank line dispatches, ':' is a comment.
  async function readEvents(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", event = { data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (event.data.length) onEvent({ id: event.id, event: event.event || "message", data: event.data.join("\n") });
          event = { data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;  // heartbeat comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
        else if (field === "event") event.event = val;
      }
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const backoff = (attempt) => Math.min(8000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);

  class ChatStream {
    constructor(ui) { this.ui = ui; this.text = ""; this.lastId = null; this.finished = null; this.reconnects = 0; }

    async start(body) {
      const res = await fetch("/api/streams", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const info = await res.json();
      if (!res.ok) throw new Error(info.error ? info.error.message : `HTTP ${res.status}`);
      this.id = info.stream_id; this.token = info.token; this.url = info.events_url;
      await this.follow();
    }

    async follow() {
      let attempt = 0;
      while (!this.finished) {
        this.abort = new AbortController();
        const headers = { Authorization: `Bearer ${this.token}` };
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        try {
          const res = await fetch(this.url, { headers, signal: this.abort.signal, cache: "no-store" });
          if (res.status === 404 || res.status === 403) { this.fail("the stream is gone (expired or not yours)"); return; }
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          attempt = 0;
          this.ui.status(this.reconnects ? `resumed after event ${this.lastId ?? "(start)"}` : "connected");
          await readEvents(res, (e) => this.onEvent(e));
          if (!this.finished) throw new Error("connection closed before the end of the answer");
        } catch (err) {
          if (this.finished) return;
          if (this.abort.signal.aborted && this.cancelling) return;
          attempt += 1; this.reconnects += 1;
          if (attempt > MAX_RECONNECTS) { this.fail(`gave up after ${MAX_RECONNECTS} reconnects: ${err.message}`); return; }
          const wait = backoff(attempt);
          this.ui.status(`connection lost (${err.message}); reconnecting in ${(wait / 1000).toFixed(1)} s, attempt ${attempt}`);
          await sleep(wait);
        }
      }
    }

    onEvent(e) {
      if (e.id !== undefined) this.lastId = e.id;
      const data = JSON.parse(e.data);
      if (e.event === "delta") {
        this.text += data.text;
        this.ui.render(this.text);
      } else if (e.event === "status") {
        this.ui.status(data.state === "retrying"
          ? `the provider failed (${data.reason}); the server is retrying, attempt ${data.attempt} in ${data.wait_s} s`
          : "streaming");
      } else if (TERMINAL.has(e.event)) {
        this.finished = e.event;
        if (e.event === "done") this.ui.status(`done (${data.finish_reason})`);
        else if (e.event === "cancelled") this.ui.status("cancelled");
        else this.fail(`the answer broke off: ${data.kind}: ${data.message}`, false);
        this.ui.finish(this);
      }
    }

    fail(message, mark = true) {
      if (mark) this.finished = "error";
      this.ui.status(message, true);
      this.ui.finish(this);
    }

    async cancel() {
      if (!this.id || this.finished) return;
      this.cancelling = true;
      await fetch(`/api/streams/${encodeURIComponent(this.id)}`, {
        method: "DELETE", headers: { Authorization: `Bearer ${this.token}` },
      });
    }
  }

  function setup() {
    const $ = (id) => document.getElementById(id);
    const ui = {
      status(message, isError = false) { $("status").textContent = message; $("status").classList.toggle("error", isError); },
      render(text) { renderMarkdown($("answer"), text); },
      finish(stream) { $("send").disabled = false; $("cancel").disabled = true; window.llmkitChat.finished = stream.finished; },
    };
    window.llmkitChat = { finished: null, renderMarkdown };
    $("ask").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("send").disabled = true; $("cancel").disabled = false;
      $("answer").replaceChildren();
      window.llmkitChat.finished = null;
      const stream = new ChatStream(ui);
      window.llmkitChat.stream = stream;
      ui.status("starting");
      try {
        await stream.start({ provider: $("provider").value, messages: [{ role: "user", content: $("prompt").value }] });
      } catch (err) {
        stream.fail(err.message);
      }
    });
    $("cancel").addEventListener("click", () => window.llmkitChat.stream && window.llmkitChat.stream.cancel());
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
