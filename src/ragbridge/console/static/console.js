// ragbridge console: copy buttons, drag-and-drop uploads with progress, streamed chat.
// Plain JavaScript, no build step; htmx does the rest.
"use strict";

function csrfToken() { return document.body.dataset.csrf || ""; }

function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}

// --- copy buttons ------------------------------------------------------------------------
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  const text = source ? source.textContent.trim() : "";
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
  }
  button.textContent = button.dataset.done || "✓";
});

// --- uploads -----------------------------------------------------------------------------
function uploadOne(zone, file, labels) {
  const list = document.getElementById("upload-results");
  const item = document.createElement("li");
  item.dataset.file = file.name;
  item.dataset.status = "uploading";
  item.innerHTML = '<span class="file"></span> <progress max="100" value="0"></progress> ' +
    '<span class="status" role="status"></span>';
  item.querySelector(".file").textContent = file.name;
  item.querySelector(".status").textContent = labels.uploading;
  item.querySelector("progress").setAttribute("aria-label", file.name);
  list.appendChild(item);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", zone.dataset.url);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) item.querySelector("progress").value = (100 * e.loaded) / e.total;
    };
    const finish = (status, detail) => {
      item.dataset.status = status;
      item.querySelector("progress").value = 100;
      item.querySelector(".status").textContent =
        (labels[status] || status) + (detail ? " — " + detail : "");
      resolve();
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (body.status && body.status !== "failed") {
        finish(body.status, body.chunks ? String(body.chunks) + " chunks" : "");
      } else {
        finish("failed", body.error || (body.error && body.error.message) || "HTTP " + xhr.status);
      }
    };
    xhr.onerror = () => finish("failed", "network error");
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

async function uploadAll(zone, files) {
  const labels = JSON.parse(zone.dataset.labels);
  const queue = Array.from(files);
  const worker = async () => {
    while (queue.length) await uploadOne(zone, queue.shift(), labels);
  };
  await Promise.all([worker(), worker()]);
  if (window.htmx) htmx.ajax("GET", zone.dataset.refresh, { target: "#documents" });
}

function setUpDropzone() {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("files");
  input.addEventListener("change", () => { uploadAll(zone, input.files); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    uploadAll(zone, e.dataTransfer.files);
  });
}

// --- chat --------------------------------------------------------------------------------
const history = [];

function addCitation(list, data, collection, label) {
  const n = list.children.length + 1;
  const meta = (data.metadata && data.metadata[0]) || {};
  const item = document.createElement("li");
  item.id = "cite-" + n;
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "[" + n + "] " + (data.source.name || "") +
    (meta.page !== undefined ? " · p. " + (meta.page + 1) : "");
  const quote = document.createElement("blockquote");
  quote.textContent = (data.document || [""])[0];
  details.append(summary, quote);
  if (collection) {
    const link = document.createElement("a");
    link.href = "/collections/" + encodeURIComponent(collection) + "/chunks/" +
      encodeURIComponent(data.source.id);
    link.textContent = label;
    details.append(link);
  }
  item.append(details);
  list.append(item);
}

function linkCitations(text) {
  return escapeHtml(text).replace(/\[(\d+)\]/g, '<a href="#cite-$1" class="cite">[$1]</a>');
}

async function sendChat(form) {
  const model = form.querySelector("#model").value;
  const box = form.querySelector("#message");
  const answer = document.getElementById("answer");
  const citations = document.getElementById("citations");
  const collection = model.startsWith("rag/") ? model.slice(4).split("/")[0] : null;
  history.push({ role: "user", content: box.value });
  answer.textContent = "";
  answer.dataset.done = "false";
  answer.setAttribute("aria-busy", "true");
  citations.innerHTML = "";
  const body = { model: model, messages: history.slice(), stream: true };
  let text = "";
  try {
    const response = await fetch("/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      let message = "HTTP " + response.status;
      try { message = (await response.json()).error.message; } catch (err) { /* not JSON */ }
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const payload = JSON.parse(data);
          if (payload.event && payload.event.type === "source") {
            addCitation(citations, payload.event.data, collection, form.dataset.citeLabel);
          } else if (payload.error) {
            throw new Error(payload.error.message);
          } else if (payload.choices && payload.choices[0] && payload.choices[0].delta) {
            text += payload.choices[0].delta.content || "";
            answer.textContent = text;
          }
        }
      }
    }
    answer.innerHTML = linkCitations(text);
    history.push({ role: "assistant", content: text });
  } catch (err) {
    history.pop();
    answer.innerHTML = '<p class="error" role="alert"></p>';
    answer.firstChild.textContent = err.message;
  }
  answer.setAttribute("aria-busy", "false");
  answer.dataset.done = "true";
  if (form.dataset.admin === "true" && collection) inspect(body);
}

async function inspect(body) {
  const target = document.getElementById("inspect");
  if (!target) return;
  const response = await fetch("/chat/inspect", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify({ model: body.model, messages: body.messages }),
  });
  target.innerHTML = await response.text();  // server-rendered, escaped by Jinja
}

function setUpChat() {
  const form = document.getElementById("chat-form");
  if (!form) return;
  form.addEventListener("submit", (e) => { e.preventDefault(); sendChat(form); });
  document.getElementById("answer").addEventListener("click", (e) => {
    const link = e.target.closest("a.cite");
    if (!link) return;
    const target = document.querySelector(link.getAttribute("href") + " details");
    if (target) target.open = true;
  });
}

document.addEventListener("DOMContentLoaded", () => { setUpDropzone(); setUpChat(); });
