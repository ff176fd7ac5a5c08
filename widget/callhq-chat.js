/*
 * CallHQ web chat widget: one file, no dependencies.
 *
 *   <div data-callhq-chat data-endpoint="/widget/chat" data-title="Chat with us"></div>
 *   <script src="/widget/callhq-chat.js" defer></script>
 *
 * or, from a script: CallHQChat.mount(element, { endpoint, title, greeting }).
 *
 * It POSTs {"input", "customer": {"externalId"}, "stream": true} to the
 * endpoint and shows the reply as the server streams it (SSE). The
 * externalId is made once and kept in localStorage, so the server finds
 * this visitor's session again (it creates and expires sessions by itself),
 * and the conversation goes on across page reloads; the transcript shown is
 * kept there too. The page holds no API key: the endpoint is an nginx
 * location that adds one (see widget/setup.sh).
 */
(function (global) {
  "use strict";

  var VERSION = "0.1.0";
  var MAX_KEPT = 100;           // messages of the transcript kept locally
  var FIRST_BYTE_MS = 60000;    // give up when the answer has not begun by then

  // ---------------------------------------------------------------- storage

  function store(prefix) {
    var memory = {};
    function get(name) {
      try {
        var v = global.localStorage.getItem(prefix + ":" + name);
        return v === null ? memory[name] : v;
      } catch (e) {
        return memory[name];
      }
    }
    function set(name, value) {
      memory[name] = value;
      try {
        if (value === undefined) global.localStorage.removeItem(prefix + ":" + name);
        else global.localStorage.setItem(prefix + ":" + name, value);
      } catch (e) {
        // storage full or disabled: kept for this page only
      }
    }
    return { get: get, set: set };
  }

  function newCustomerId() {
    var c = global.crypto;
    if (c && typeof c.randomUUID === "function") return "web-" + c.randomUUID();
    var bytes = new Uint8Array(16);
    c.getRandomValues(bytes);
    return "web-" + Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  // ---------------------------------------------------------------- the stream

  // Calls onEvent(data) for every SSE event of a fetch Response body.
  async function readEvents(body, onEvent) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    var data = [];
    for (;;) {
      var r = await reader.read();
      buf += r.done ? decoder.decode() : decoder.decode(r.value, { stream: true });
      var m;
      var re = /\r\n|\r|\n/g;
      var start = 0;
      while ((m = re.exec(buf)) !== null) {
        if (m[0] === "\r" && m.index + 1 === buf.length && !r.done) break; // half a CRLF
        var line = buf.slice(start, m.index);
        start = m.index + m[0].length;
        if (line === "") {
          if (data.length) onEvent(data.join("\n"));
          data = [];
        } else if (line.slice(0, 5) === "data:") {
          data.push(line.slice(line.charAt(5) === " " ? 6 : 5));
        }
      }
      buf = buf.slice(start);
      if (r.done) return;
    }
  }

  // An error answer in words: the API's {"statusCode", "message"} or the status.
  async function describeError(res) {
    var text = "";
    try { text = await res.text(); } catch (e) { /* no body */ }
    try {
      var j = JSON.parse(text);
      if (j && typeof j.message === "string") return j.message + " (" + res.status + ")";
    } catch (e) { /* not JSON */ }
    var known = {
      401: "the chat is not configured (no key)", 404: "the chat service was not found",
      409: "the previous message is still being answered", 429: "too many messages, wait a moment",
      502: "the assistant is unavailable", 503: "the service is busy, try again",
      504: "the assistant took too long"
    };
    return (known[res.status] || res.statusText || "request failed") + " (" + res.status + ")";
  }

  // ---------------------------------------------------------------- styles

  var CSS = [
    ".cqc{--cqc-accent:#2457d6;display:flex;flex-direction:column;width:100%;max-width:420px;",
    "height:520px;border:1px solid #d5d9e0;border-radius:12px;overflow:hidden;background:#fff;",
    "font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1c2330;",
    "box-shadow:0 4px 18px rgba(20,30,60,.08)}",
    ".cqc-head{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;",
    "background:var(--cqc-accent);color:#fff;font-weight:600}",
    ".cqc-reset{background:none;border:1px solid rgba(255,255,255,.6);color:#fff;border-radius:6px;",
    "font:inherit;font-size:12px;font-weight:400;padding:2px 8px;cursor:pointer}",
    ".cqc-log{flex:1;overflow-y:auto;margin:0;padding:12px;list-style:none;background:#f6f7f9}",
    ".cqc-msg{width:fit-content;max-width:85%;margin:0 0 8px;padding:8px 11px;border-radius:10px;",
    "white-space:pre-wrap;overflow-wrap:anywhere}",
    ".cqc-msg[data-role=user]{margin-left:auto;background:var(--cqc-accent);color:#fff}",
    ".cqc-msg[data-role=assistant]{background:#fff;border:1px solid #e1e4ea}",
    ".cqc-msg[data-role=note]{width:auto;max-width:none;text-align:center;color:#5b6475;font-size:13px;",
    "background:none;padding:2px}",
    ".cqc-msg[data-role=error]{width:auto;max-width:none;background:#fdecec;border:1px solid #f3b4b4;color:#8a1c1c}",
    ".cqc-msg[aria-busy=true]:empty::after{content:'\\2026';color:#8a93a3}",
    ".cqc-msg .cqc-cut{color:#8a1c1c;font-size:12px}",
    ".cqc-form{display:flex;gap:8px;padding:10px;border-top:1px solid #e1e4ea}",
    ".cqc-input{flex:1;resize:none;font:inherit;padding:8px 10px;border:1px solid #c9ced8;",
    "border-radius:8px;min-height:20px;max-height:120px}",
    ".cqc-send{font:inherit;font-weight:600;padding:0 16px;border:0;border-radius:8px;",
    "background:var(--cqc-accent);color:#fff;cursor:pointer}",
    ".cqc-send:disabled{opacity:.55;cursor:default}"
  ].join("");

  function injectStyles(doc) {
    if (doc.getElementById("callhq-chat-style")) return;
    var style = doc.createElement("style");
    style.id = "callhq-chat-style";
    style.textContent = CSS;
    doc.head.appendChild(style);
  }

  // ---------------------------------------------------------------- the widget

  function el(doc, tag, cls, attrs) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }

  function mount(container, options) {
    options = options || {};
    var doc = container.ownerDocument;
    var endpoint = options.endpoint || "/widget/chat";
    var kept = store(options.storageKey || "callhq-chat");
    var sending = false;

    injectStyles(doc);
    container.textContent = "";
    var root = el(doc, "section", "cqc", { "aria-label": options.title || "Chat" });
    var head = el(doc, "header", "cqc-head");
    var title = el(doc, "span");
    title.textContent = options.title || "Chat with us";
    var reset = el(doc, "button", "cqc-reset", { type: "button", title: "Start a new conversation" });
    reset.textContent = "New chat";
    head.appendChild(title);
    head.appendChild(reset);
    var log = el(doc, "ol", "cqc-log", { "aria-live": "polite" });
    var form = el(doc, "form", "cqc-form");
    var input = el(doc, "textarea", "cqc-input", {
      name: "message", rows: "1", maxlength: "2000", placeholder: "Type a message",
      "aria-label": "Message", autocomplete: "off"
    });
    var send = el(doc, "button", "cqc-send", { type: "submit" });
    send.textContent = "Send";
    form.appendChild(input);
    form.appendChild(send);
    root.appendChild(head);
    root.appendChild(log);
    root.appendChild(form);
    container.appendChild(root);

    function customerId() {
      var id = kept.get("customer");
      if (!id) {
        id = newCustomerId();
        kept.set("customer", id);
      }
      return id;
    }

    function transcript() {
      try { return JSON.parse(kept.get("log") || "[]"); } catch (e) { return []; }
    }

    function remember(role, text) {
      var t = transcript();
      t.push({ role: role, text: text });
      kept.set("log", JSON.stringify(t.slice(-MAX_KEPT)));
    }

    function show(role, text) {
      var li = el(doc, "li", "cqc-msg", { "data-role": role });
      li.textContent = text;
      if (role === "error") li.setAttribute("role", "alert");
      log.appendChild(li);
      log.scrollTop = log.scrollHeight;
      return li;
    }

    function render() {
      log.textContent = "";
      var t = transcript();
      if (options.greeting) show("assistant", options.greeting).classList.add("cqc-greeting");
      t.forEach(function (m) { show(m.role, m.text); });
    }

    function busy(on) {
      sending = on;
      send.disabled = on;
      root.setAttribute("aria-busy", on ? "true" : "false");
    }

    async function ask(text) {
      busy(true);
      show("user", text);
      remember("user", text);
      var reply = show("assistant", "");
      reply.setAttribute("aria-busy", "true");
      var got = "";
      var ctl = new AbortController();
      var timer = setTimeout(function () { ctl.abort(); }, FIRST_BYTE_MS);
      try {
        var res = await fetch(endpoint, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
          // exactly this shape and order: the endpoint accepts nothing else
          body: JSON.stringify({ input: text, customer: { externalId: customerId() }, stream: true }),
          signal: ctl.signal
        });
        clearTimeout(timer);
        if (!res.ok) throw new Error(await describeError(res));
        if (!res.body) throw new Error("the answer could not be read");
        var first = true;
        await readEvents(res.body, function (data) {
          var ev;
          try { ev = JSON.parse(data); } catch (e) { return; }
          if (first) {
            first = false;
            var before = kept.get("session");
            if (ev.sessionId && before && before !== ev.sessionId) {
              log.insertBefore(noteElement("The earlier conversation had ended; this is a new one."),
                               reply);
              remember("note", "The earlier conversation had ended; this is a new one.");
            }
            if (ev.sessionId) kept.set("session", ev.sessionId);
          }
          if (typeof ev.delta === "string") {
            got += ev.delta;
            reply.textContent = got;
            log.scrollTop = log.scrollHeight;
          }
        });
        if (!got) throw new Error("the assistant sent an empty answer");
        reply.removeAttribute("aria-busy");
        remember("assistant", got);
      } catch (err) {
        clearTimeout(timer);
        reply.removeAttribute("aria-busy");
        var why = err && err.name === "AbortError" ? "no answer in time"
                : err instanceof TypeError ? "could not reach the chat service"
                : (err && err.message) || String(err);
        if (got) {
          var cut = el(doc, "span", "cqc-cut");
          cut.textContent = " [interrupted]";
          reply.appendChild(cut);
          remember("assistant", got + " [interrupted]");
        } else {
          log.removeChild(reply);
        }
        show("error", "Could not get an answer: " + why);
        remember("error", "Could not get an answer: " + why);
        if (!input.value) input.value = text;
      } finally {
        busy(false);
        input.focus();
      }
    }

    function noteElement(text) {
      var li = el(doc, "li", "cqc-msg", { "data-role": "note" });
      li.textContent = text;
      return li;
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = input.value.trim();
      if (!text || sending) return;
      input.value = "";
      ask(text);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit();
        else form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    reset.addEventListener("click", function () {
      if (sending) return;
      // a new visitor id: the server starts a new session for it
      kept.set("customer", undefined);
      kept.set("session", undefined);
      kept.set("log", undefined);
      render();
      input.focus();
    });

    render();
    return {
      send: function (text) { return ask(String(text)); },
      reset: function () { reset.click(); },
      get customerId() { return customerId(); }
    };
  }

  function autoMount() {
    var nodes = global.document.querySelectorAll("[data-callhq-chat]");
    Array.prototype.forEach.call(nodes, function (node) {
      if (node.getAttribute("data-callhq-mounted")) return;
      node.setAttribute("data-callhq-mounted", "1");
      mount(node, {
        endpoint: node.getAttribute("data-endpoint") || undefined,
        title: node.getAttribute("data-title") || undefined,
        greeting: node.getAttribute("data-greeting") || undefined,
        storageKey: node.getAttribute("data-storage-key") || undefined
      });
    });
  }

  global.CallHQChat = { mount: mount, version: VERSION };
  if (global.document) {
    if (global.document.readyState === "loading") {
      global.document.addEventListener("DOMContentLoaded", autoMount);
    } else {
      autoMount();
    }
  }
})(window);
