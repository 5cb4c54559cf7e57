// Galley dashboard: small progressive enhancements over server-rendered forms.
// No framework and no build step; every page works for reading without this file.
"use strict";

(function () {
  // Mailed links open PocketBase's hash routes (/_/#/auth/confirm-verification/TOKEN, …).
  const m = /^#\/auth\/confirm-(verification|password-reset|email-change)\/([^/?#]+)/.exec(location.hash);
  if (m) {
    location.replace("/_/confirm?kind=" + m[1] + "&token=" + encodeURIComponent(m[2]));
    return;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = () => { const i = $('input[name="csrf"]'); return i ? i.value : ""; };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) if (k) e.append(k);
    return e;
  }

  // ---- confirmations before destructive submits
  for (const f of $$("form[data-confirm]")) {
    f.addEventListener("submit", (ev) => {
      if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
    });
  }

  // ---- select all rows
  const all = $("#select-all");
  if (all) {
    all.addEventListener("change", () => {
      for (const c of $$('input[name="ids"]')) c.checked = all.checked;
    });
  }

  // ---- JSON textareas validate as you type
  for (const t of $$("textarea[data-json]")) {
    const out = t.parentElement.querySelector(".json-status");
    const check = () => {
      if (t.value.trim() === "") { t.removeAttribute("aria-invalid"); if (out) out.textContent = ""; return; }
      try { JSON.parse(t.value); t.removeAttribute("aria-invalid"); if (out) { out.textContent = "Valid JSON"; out.className = "json-status ok"; } }
      catch (e) { t.setAttribute("aria-invalid", "true"); if (out) { out.textContent = "Invalid JSON: " + e.message; out.className = "json-status bad"; } }
    };
    t.addEventListener("input", check);
    check();
  }

  // ---- previews of chosen image files
  for (const input of $$("input[type=file][data-preview]")) {
    input.addEventListener("change", () => {
      const box = document.getElementById(input.dataset.preview);
      if (!box) return;
      box.replaceChildren();
      for (const f of input.files) {
        const fig = el("figure", {});
        if (f.type.startsWith("image/")) fig.append(el("img", { src: URL.createObjectURL(f), alt: "Preview of " + f.name, width: 96, height: 96 }));
        fig.append(el("figcaption", { text: f.name + " (" + Math.ceil(f.size / 1024) + " KiB)" }));
        box.append(fig);
      }
    });
  }

  // ---- the collection editor
  const form = $("#collection-form");
  if (!form) return;

  const typeSel = $("#c-type");
  const syncType = () => {
    const t = typeSel.value;
    $(".view-only", form).hidden = t !== "view";
    $(".fields-section", form).hidden = t === "view";
    for (const a of $$(".auth-only", form)) a.hidden = t !== "auth";
  };
  if (typeSel && typeSel.tagName === "SELECT") typeSel.addEventListener("change", syncType);

  const collections = JSON.parse(form.dataset.collections || "[]");
  const jsonBox = $("#c-fields");
  let fields = [];
  try { fields = JSON.parse(jsonBox.value || "[]"); } catch (_) { fields = []; }
  if (!Array.isArray(fields)) fields = [];

  const TYPES = ["text", "number", "bool", "email", "url", "editor", "date", "autodate", "select", "json", "relation", "file", "geoPoint", "password"];
  // Options per type: [key, label, kind]; kinds: num, numnull, bool, text, list, collection.
  const OPTIONS = {
    text: [["min", "Min length", "num"], ["max", "Max length", "num"], ["pattern", "Pattern (regex)", "text"], ["autogeneratePattern", "Autogenerate pattern", "text"]],
    number: [["min", "Min", "numnull"], ["max", "Max", "numnull"], ["onlyInt", "Integers only", "bool"]],
    bool: [],
    email: [["onlyDomains", "Only domains", "list"], ["exceptDomains", "Except domains", "list"]],
    url: [["onlyDomains", "Only domains", "list"], ["exceptDomains", "Except domains", "list"]],
    editor: [["maxSize", "Max size (bytes)", "num"], ["convertURLs", "Convert URLs", "bool"]],
    date: [["min", "Min date", "text"], ["max", "Max date", "text"]],
    autodate: [["onCreate", "Set on create", "bool"], ["onUpdate", "Set on update", "bool"]],
    select: [["values", "Values", "list"], ["maxSelect", "Max selected", "num"]],
    json: [["maxSize", "Max size (bytes)", "num"]],
    relation: [["collectionId", "Collection", "collection"], ["maxSelect", "Max selected", "num"], ["minSelect", "Min selected", "num"], ["cascadeDelete", "Delete with the related record", "bool"]],
    file: [["maxSelect", "Max files", "num"], ["maxSize", "Max size (bytes)", "num"], ["mimeTypes", "MIME types", "list"], ["thumbs", "Thumb sizes (e.g. 100x100)", "list"], ["protected", "Protected (needs a file token)", "bool"]],
    geoPoint: [],
    password: [["min", "Min length", "num"], ["max", "Max length", "num"], ["pattern", "Pattern", "text"]],
  };
  const DEFAULTS = {
    select: { maxSelect: 1, values: [] }, relation: { maxSelect: 1, collectionId: (collections[0] || {}).id || "" },
    file: { maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [] }, autodate: { onCreate: true, onUpdate: false },
  };

  const editor = $("#field-editor");
  jsonBox.hidden = true;
  jsonBox.previousElementSibling.hidden = true;
  let seq = 0;

  function optionInput(f, [key, label, kind], idp) {
    const id = idp + "-" + key;
    if (kind === "bool") {
      return el("div", { class: "check" },
        el("input", { id, type: "checkbox", checked: !!f[key], onchange: (e) => { f[key] = e.target.checked; } }),
        " ", el("label", { for: id, text: label }));
    }
    let input;
    if (kind === "collection") {
      input = el("select", { id, onchange: (e) => { f[key] = e.target.value; } },
        ...collections.map((c) => el("option", { value: c.id, selected: f[key] === c.id, text: c.name })));
      if (!f[key] && collections[0]) f[key] = collections[0].id;
    } else if (kind === "list") {
      input = el("input", { id, value: (f[key] || []).join(", "), placeholder: "comma separated",
        oninput: (e) => { f[key] = e.target.value.split(",").map((s) => s.trim()).filter(Boolean); } });
    } else if (kind === "num" || kind === "numnull") {
      const v = f[key];
      input = el("input", { id, type: "number", step: "any", value: v === null || v === undefined ? "" : v,
        oninput: (e) => { const s = e.target.value; f[key] = s === "" ? (kind === "numnull" ? null : 0) : Number(s); } });
    } else {
      input = el("input", { id, value: f[key] || "", oninput: (e) => { f[key] = e.target.value; } });
    }
    return el("div", { class: "field" }, el("label", { for: id, text: label }), input);
  }

  function render() {
    editor.replaceChildren();
    fields.forEach((f, i) => {
      const idp = "fe" + (seq++);
      const sys = !!f.system;
      const box = el("fieldset", { class: "fieldbox" + (sys ? " system" : ""), "data-field": f.name || "" });
      box.append(el("legend", { text: (f.name || "(new field)") + " · " + f.type + (sys ? " · system" : "") }));
      const row = el("div", { class: "row" });
      row.append(el("div", { class: "field" },
        el("label", { for: idp + "-name", text: "Name" }),
        el("input", { id: idp + "-name", value: f.name || "", required: true, readonly: sys, "data-role": "field-name",
          oninput: (e) => { f.name = e.target.value.trim(); box.firstChild.textContent = (f.name || "(new field)") + " · " + f.type; } })));
      row.append(el("div", { class: "field" },
        el("label", { for: idp + "-type", text: "Type" }),
        el("select", { id: idp + "-type", disabled: sys, onchange: (e) => { f.type = e.target.value; Object.assign(f, DEFAULTS[f.type] || {}); render(); } },
          ...TYPES.map((t) => el("option", { value: t, selected: t === f.type, text: t })))));
      box.append(row);
      const flags = el("div", { class: "flags" });
      for (const [k, l] of [["required", "Required"], ["hidden", "Hidden from the API"], ["presentable", "Presentable (shown in relation pickers)"]]) {
        if (f.type === "autodate" && k === "required") continue;
        flags.append(optionInput(f, [k, l, "bool"], idp));
      }
      box.append(flags);
      box.append(optionInput(f, ["help", "Help text (shown under the field in record forms)", "text"], idp));
      const opts = OPTIONS[f.type] || [];
      if (opts.length) box.append(el("div", { class: "opts" }, ...opts.map((o) => optionInput(f, o, idp))));
      if (!sys) {
        box.append(el("div", { class: "actions" },
          el("button", { type: "button", class: "small", "aria-label": "Move " + (f.name || "field") + " up", onclick: () => { if (i > 0) { fields.splice(i - 1, 0, fields.splice(i, 1)[0]); render(); } }, text: "↑" }),
          el("button", { type: "button", class: "small", "aria-label": "Move " + (f.name || "field") + " down", onclick: () => { if (i < fields.length - 1) { fields.splice(i + 1, 0, fields.splice(i, 1)[0]); render(); } }, text: "↓" }),
          el("button", { type: "button", class: "small danger", onclick: () => { fields.splice(i, 1); render(); }, text: "Remove field " + (f.name || "") })));
      }
      editor.append(box);
    });
    const addType = el("select", { id: "new-field-type", "aria-label": "Type of the new field" }, ...TYPES.map((t) => el("option", { value: t, text: t })));
    editor.append(el("div", { class: "addfield" },
      el("label", { for: "new-field-type", text: "New field of type" }), addType,
      el("button", { type: "button", id: "add-field", onclick: () => {
        fields.push(Object.assign({ name: "", type: addType.value, required: false, hidden: false, presentable: false, system: false }, DEFAULTS[addType.value] || {}));
        render();
        const names = $$('[data-role="field-name"]', editor);
        if (names.length) names[names.length - 1].focus();
      }, text: "+ Add field" })));
  }
  render();

  // Index builder: pick a field (the list follows the field editor), unique or not.
  const builder = $("#index-builder");
  const idxField = $("#idx-field");
  const syncIndexFields = () => {
    const cur = idxField.value;
    idxField.replaceChildren(...fields.filter((f) => f.name).map((f) => el("option", { value: f.name, selected: f.name === cur, text: f.name })));
  };
  if (builder) {
    builder.hidden = false;
    editor.addEventListener("input", syncIndexFields);
    editor.addEventListener("click", () => setTimeout(syncIndexFields, 0));
    syncIndexFields();
    $("#add-index").addEventListener("click", () => {
      const name = ($("#c-name").value || "collection").trim();
      const f = idxField.value;
      if (!f) return;
      const unique = $("#idx-unique").checked;
      const box = $("#c-indexes");
      const line = "CREATE " + (unique ? "UNIQUE " : "") + "INDEX idx_" + name + "_" + f + " ON " + name + " (" + f + ")";
      box.value = (box.value.trim() ? box.value.trim() + "\n" : "") + line;
      box.focus();
    });
  }

  form.addEventListener("submit", () => {
    jsonBox.value = JSON.stringify(fields);
  });

  // ---- rules: lock toggles and a live check against the server's parser
  for (const lock of $$("input[data-lock]", form)) {
    lock.addEventListener("change", () => {
      const t = document.getElementById("r-" + lock.dataset.lock);
      t.disabled = lock.checked;
      document.getElementById("s-" + lock.dataset.lock).textContent = lock.checked ? "Locked: only superusers." : "";
      if (!lock.checked) t.focus();
    });
  }
  const timers = {};
  async function checkRule(t) {
    const out = document.getElementById("s-" + t.dataset.rule);
    const body = {
      rule: t.value,
      collection: { original: form.getAttribute("action").startsWith("/_/collections/new") ? "" : decodeURIComponent(form.getAttribute("action").split("/")[3] || ""),
        name: $("#c-name").value, type: typeSel.value, fields },
    };
    try {
      const r = await fetch("/_/api/check-rule", { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf() }, body: JSON.stringify(body), credentials: "same-origin" });
      const j = await r.json();
      if (j.ok) { out.className = "rule-status ok"; out.textContent = "✓ " + j.message; t.removeAttribute("aria-invalid"); return; }
      out.className = "rule-status bad";
      t.setAttribute("aria-invalid", "true");
      out.replaceChildren();
      out.append(el("span", { text: "✗ " + (j.message || "Invalid rule.") }));
      if (typeof j.position === "number") {
        const chars = Array.from(t.value);
        const p = Math.min(j.position, chars.length);
        out.append(el("span", { class: "at", text: " (at character " + (p + 1) + ")" }));
        out.append(el("code", { class: "where" }, chars.slice(0, p).join(""), el("mark", { text: chars.slice(p, p + 1).join("") || "␣" }), chars.slice(p + 1).join("")));
      }
    } catch (e) {
      out.className = "rule-status bad";
      out.textContent = "Could not check the rule: " + e.message;
    }
  }
  for (const t of $$("textarea[data-rule]", form)) {
    t.addEventListener("input", () => {
      clearTimeout(timers[t.id]);
      timers[t.id] = setTimeout(() => checkRule(t), 250);
    });
  }
})();
