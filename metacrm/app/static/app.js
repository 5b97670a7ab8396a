// metacrm app: progressive enhancement. Every page works without this file; with it, filters are
// checked as you type, lookups suggest records, forms apply their rules live, cards drag between
// stages and fields edit in place. No framework, no third-party code.
"use strict";

(function () {
  const csrf = () => document.body.dataset.csrf || "";
  const headers = (extra) => Object.assign({ "X-Requested-With": "metacrm", "X-CSRF-Token": csrf() }, extra || {});
  document.documentElement.classList.add("js");

  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: headers(), credentials: "same-origin" });
    if (response.status === 401) { window.location.reload(); return null; }
    return response.json();
  }

  async function postForm(url, data) {
    const response = await fetch(url, { method: "POST", body: data, headers: headers(), credentials: "same-origin" });
    if (response.status === 401) { window.location.reload(); return { status: 401, body: null }; }
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    return { status: response.status, body: body };
  }

  // ---- confirmations ------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  // ---- list selection -----------------------------------------------------------------------
  document.addEventListener("change", (event) => {
    const all = event.target.closest("[data-select-all]");
    if (!all) return;
    const form = all.closest("form");
    form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = all.checked; });
  });

  // ---- the filter box: checked as you type ---------------------------------------------------
  document.querySelectorAll("form[data-filter-check]").forEach((form) => {
    const input = form.querySelector('input[name="filter"]');
    const out = form.querySelector("#filter-error");
    if (!input || !out) return;
    const check = debounce(async () => {
      const url = form.dataset.filterCheck + "?filter=" + encodeURIComponent(input.value);
      const answer = await getJSON(url);
      if (!answer) return;
      if (answer.ok) {
        out.textContent = "";
        input.classList.remove("invalid");
        input.removeAttribute("aria-invalid");
      } else {
        // The server words the whole message (position and suggestions too) in the user's
        // language: this file holds no text of its own.
        out.textContent = answer.text || answer.message || "";
        input.classList.add("invalid");
        input.setAttribute("aria-invalid", "true");
      }
    }, 300);
    input.addEventListener("input", check);
  });

  // ---- lookups: search as you type ----------------------------------------------------------
  function setupLookup(box) {
    const idInput = box.querySelector("[data-lookup-id]");
    const text = box.querySelector('input[type="text"]');
    const list = box.querySelector(".lookup-options");
    let items = [];
    let active = -1;
    const close = () => { list.hidden = true; text.setAttribute("aria-expanded", "false"); active = -1; };
    const choose = (item) => {
      idInput.value = item.id;
      text.value = item.title;
      const shown = box.querySelector('input[name$="__shown"]');
      if (shown) shown.value = item.title;
      close();
      text.dispatchEvent(new Event("change", { bubbles: true }));
    };
    const render = () => {
      list.replaceChildren();
      items.forEach((item, index) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.id = text.id + "-option-" + index;
        li.textContent = item.title;
        li.setAttribute("aria-selected", index === active ? "true" : "false");
        li.addEventListener("mousedown", (event) => { event.preventDefault(); choose(item); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      text.setAttribute("aria-expanded", items.length ? "true" : "false");
      if (active >= 0) text.setAttribute("aria-activedescendant", text.id + "-option-" + active);
    };
    const search = debounce(async () => {
      const q = text.value.trim();
      if (!q) { items = []; render(); return; }
      const answer = await getJSON(box.dataset.lookup + "?q=" + encodeURIComponent(q));
      items = (answer && answer.data) || [];
      active = items.length ? 0 : -1;
      render();
    }, 200);
    text.addEventListener("input", () => { idInput.value = ""; search(); });
    text.addEventListener("keydown", (event) => {
      if (list.hidden) return;
      if (event.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); render(); event.preventDefault(); }
      else if (event.key === "ArrowUp") { active = Math.max(0, active - 1); render(); event.preventDefault(); }
      else if (event.key === "Enter" && active >= 0) { choose(items[active]); event.preventDefault(); }
      else if (event.key === "Escape") { close(); }
    });
    text.addEventListener("blur", () => setTimeout(close, 150));
  }

  // ---- live form logic ----------------------------------------------------------------------
  // The server judges visible_if / required_if / read_only_if / default_expr and the validation
  // rules on what the form holds (window.metacrmRules, when loaded, answers the expressions the
  // browser can compute itself and the server is asked only for the rest).
  function setupForm(form) {
    const url = form.dataset.logic;
    if (!url) return;
    const touched = new Set();
    const fieldBox = (name) => form.querySelector('.field[data-field="' + CSS.escape(name) + '"]');
    const apply = (state) => {
      Object.entries(state.sections || {}).forEach(([key, shown]) => {
        const section = form.querySelector('fieldset[data-section="' + CSS.escape(key) + '"]');
        if (section) section.hidden = !shown;
      });
      Object.entries(state.visible || {}).forEach(([name, shown]) => {
        const box = fieldBox(name);
        if (box) box.hidden = !shown;
      });
      Object.entries(state.required || {}).forEach(([name, required]) => {
        const box = fieldBox(name);
        if (!box) return;
        const label = box.querySelector("label");
        let mark = label && label.querySelector(".req.live");
        if (required && label && !mark) {
          mark = document.createElement("span");
          mark.className = "req live";
          mark.textContent = " *";
          label.appendChild(mark);
        } else if (!required && mark) mark.remove();
      });
      Object.entries(state.read_only || {}).forEach(([name, locked]) => {
        const box = fieldBox(name);
        if (!box) return;
        box.querySelectorAll("input, select, textarea").forEach((input) => {
          if (input.type !== "hidden") input.disabled = locked;
        });
      });
      Object.entries(state.defaults || {}).forEach(([name, value]) => {
        const input = form.querySelector('[name="' + CSS.escape(name) + '"]');
        if (input && !touched.has(name) && !input.value && value !== null) input.value = value;
      });
      form.querySelectorAll(".field").forEach((box) => {
        const name = box.dataset.field;
        const out = box.querySelector(".field-error");
        if (!out) return;
        const message = (state.errors || {})[name];
        // Only fields the user has worked on get live messages; the server's answer to a save
        // stays until they edit the field.
        if (touched.has(name)) {
          out.textContent = message || "";
          box.classList.toggle("has-error", Boolean(message));
        }
      });
    };
    const ask = debounce(async () => {
      const data = new FormData(form);
      const answer = await postForm(url, data);
      if (answer.status === 200 && answer.body && typeof answer.body === "object") apply(answer.body);
    }, 250);
    form.addEventListener("input", (event) => {
      const box = event.target.closest(".field");
      if (box) touched.add(box.dataset.field);
      ask();
    });
    form.addEventListener("change", (event) => {
      const box = event.target.closest(".field");
      if (box) touched.add(box.dataset.field);
      ask();
    });
    ask();
  }

  // ---- kanban: drag a card to another stage -------------------------------------------------
  function setupBoard(board) {
    let dragged = null;
    let origin = null;
    board.addEventListener("dragstart", (event) => {
      const card = event.target.closest(".card-item");
      if (!card) return;
      dragged = card;
      origin = card.parentElement;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.dataset.id);
    });
    board.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      board.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
    });
    board.addEventListener("dragover", (event) => {
      const column = event.target.closest(".column");
      if (!column || !dragged) return;
      event.preventDefault();
      board.querySelectorAll(".drop-target").forEach((c) => { if (c !== column) c.classList.remove("drop-target"); });
      column.classList.add("drop-target");
    });
    board.addEventListener("drop", async (event) => {
      const column = event.target.closest(".column");
      if (!column || !dragged) return;
      event.preventDefault();
      column.classList.remove("drop-target");
      const card = dragged;
      const from = origin;
      dragged = null;
      const fromColumn = from.closest(".column");
      if (column === fromColumn) return;
      const list = column.querySelector(".cards");
      list.prepend(card);
      const errors = card.querySelector(".card-errors");
      errors.textContent = "";
      const data = new FormData();
      data.set("_csrf", csrf());
      data.set("field", board.dataset.field);
      data.set("stage", column.dataset.stage);
      data.set("_version", card.dataset.version);
      const answer = await postForm("/app/" + board.dataset.entity + "/" + card.dataset.id + "/stage", data);
      if (answer.status === 200 && answer.body && answer.body.ok) {
        card.dataset.version = answer.body.version;
        const count = (c) => c.querySelector("[data-count]");
        count(column).textContent = String(Number(count(column).textContent) + 1);
        count(fromColumn).textContent = String(Math.max(0, Number(count(fromColumn).textContent) - 1));
        card.classList.remove("refused");
      } else {
        // Refused: the card springs back and says why.
        from.prepend(card);
        card.classList.remove("refused");
        void card.offsetWidth;
        card.classList.add("refused");
        // The reasons come translated from the server (a refused move lists them; any other
        // refusal says what it means); the board's own data attribute covers the rest.
        const body = answer.body && typeof answer.body === "object" ? answer.body : {};
        const said = Array.isArray(body.errors) && body.errors.length && body.errors.every((e) => typeof e === "string");
        const reasons = said ? body.errors : [body.message || board.dataset.refused];
        errors.textContent = reasons.join(" · ");
      }
    });
  }

  // ---- inline edit on the record page -------------------------------------------------------
  function setupInlineEdit(value) {
    value.setAttribute("tabindex", "0");
    value.setAttribute("role", "button");
    const open = async () => {
      if (value.dataset.editing) return;
      value.dataset.editing = "1";
      const response = await fetch(value.dataset.inlineEdit, { headers: { "X-Requested-With": "metacrm-page" }, credentials: "same-origin" });
      const html = await response.text();
      const doc = new DOMParser().parseFromString(html, "text/html");
      const form = doc.querySelector("form.record-form");
      if (!form) { delete value.dataset.editing; return; }
      const holder = document.createElement("div");
      holder.className = "inline-editor";
      holder.appendChild(document.importNode(form, true));
      const original = value.cloneNode(true);
      value.replaceWith(holder);
      const bind = (live) => {
        live.querySelectorAll(".lookup[data-lookup]").forEach(setupLookup);
        const cancel = live.querySelector("a.button");
        if (cancel) cancel.addEventListener("click", (event) => { event.preventDefault(); holder.replaceWith(original); setupInlineEdit(original); });
        const first = live.querySelector("input:not([type=hidden]), select, textarea");
        if (first) first.focus();
        live.addEventListener("submit", async (event) => {
          event.preventDefault();
          const answer = await postForm(live.action, new FormData(live));
          if (answer.status === 200 && answer.body && answer.body.ok) {
            const page = await fetch(window.location.pathname, { credentials: "same-origin" });
            const fresh = new DOMParser().parseFromString(await page.text(), "text/html");
            const main = fresh.querySelector("main");
            if (main) { document.querySelector("main").replaceWith(document.importNode(main, true)); enhance(document.querySelector("main")); }
          } else if (typeof answer.body === "string") {
            // Refused or stale: the server's form comes back with the errors (or what the other
            // person changed) and the user's values kept.
            const again = new DOMParser().parseFromString(answer.body, "text/html");
            const notice = again.querySelector(".conflict, .alert");
            const next = again.querySelector("form.record-form");
            holder.replaceChildren();
            if (notice) holder.appendChild(document.importNode(notice, true));
            if (next) { const form = document.importNode(next, true); holder.appendChild(form); bind(form); }
          }
        });
      };
      bind(holder.querySelector("form"));
    };
    value.addEventListener("click", (event) => { if (!event.target.closest("a")) open(); });
    value.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
  }

  function enhance(root) {
    root.querySelectorAll(".lookup[data-lookup]").forEach(setupLookup);
    root.querySelectorAll("form.record-form[data-logic]").forEach(setupForm);
    root.querySelectorAll("[data-board]").forEach(setupBoard);
    root.querySelectorAll("[data-inline-edit]").forEach(setupInlineEdit);
  }
  enhance(document);
})();
