// Lane display (suishen gateway): shows and speaks each verdict of this lane, fed by SSE.
// Served from the gateway itself under a strict CSP: no inline script, nothing from a CDN.
"use strict";

(function () {
  const body = document.body;
  const verdictEl = document.getElementById("verdict");
  const nameEl = document.getElementById("name");
  const reasonEl = document.getElementById("reason");
  const linkEl = document.getElementById("link");
  const clearAfterMs = Number(body.dataset.clearAfterMs) || 5000;
  const speak = body.dataset.speak === "true";
  let clearTimer = null;
  let voice = null;

  function pickVoice() {
    if (!("speechSynthesis" in window)) {
      return;
    }
    const voices = window.speechSynthesis.getVoices();
    voice = voices.find((v) => v.lang === "zh-CN") ||
      voices.find((v) => v.lang && v.lang.toLowerCase().startsWith("zh")) || null;
  }

  function say(text) {
    if (!speak || !("speechSynthesis" in window) || !text) {
      return;
    }
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = "zh-CN";
    if (voice) {
      utterance.voice = voice;
    }
    window.speechSynthesis.cancel(); // the newest verdict wins over one still being spoken
    window.speechSynthesis.speak(utterance);
  }

  function idle() {
    body.className = "idle";
    verdictEl.textContent = "请扫码";
    nameEl.textContent = "";
    reasonEl.textContent = "";
  }

  function show(event) {
    body.className = event.verdict === "allow" ? "allow" : "deny";
    verdictEl.textContent = event.verdict_zh;
    nameEl.textContent = event.masked_name || "";
    reasonEl.textContent = event.verdict === "allow" ? "" : (event.reason_zh || "");
    body.dataset.seq = String(event.seq);
    say(event.spoken);
    if (clearTimer !== null) {
      clearTimeout(clearTimer);
    }
    clearTimer = setTimeout(idle, clearAfterMs);
  }

  function connect() {
    const source = new EventSource(body.dataset.events);
    source.addEventListener("open", function () {
      linkEl.className = "up";
      linkEl.textContent = "";
    });
    source.addEventListener("error", function () {
      linkEl.className = "down";
      linkEl.textContent = "连接中断，正在重连…"; // EventSource reconnects by itself
    });
    source.addEventListener("verdict", function (message) {
      try {
        show(JSON.parse(message.data));
      } catch (err) {
        // A malformed event is ignored; the next verdict shows normally.
      }
    });
  }

  if ("speechSynthesis" in window) {
    pickVoice();
    window.speechSynthesis.addEventListener("voiceschanged", pickVoice);
  }
  idle();
  connect();
})();
