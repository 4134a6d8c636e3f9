// djepa playground: calls the public REST API with relative URLs (so it works under a route prefix),
// shows each request's latency and the API's error messages verbatim. No build step, no dependencies.
"use strict";

(() => {
  const KEY_STORE = "djepa.apiKey"; // sessionStorage: the key lives as long as the tab
  const MODALITIES = ["image", "speech", "video"];
  const $ = (id) => document.getElementById(id);
  const objectUrls = {}; // panel -> blob: URL shown now (revoked when replaced)
  let models = [];

  // ---- the API ----------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, field, requestId) {
      super(message);
      Object.assign(this, { status, code, field, requestId, ms: null });
    }
  }

  function apiUrl(path) {
    return new URL(path, document.baseURI).toString();
  }

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  // The answer's error as the API wrote it: {"error": {code, message, field, request_id}}; any other body verbatim.
  async function errorOf(response) {
    const text = await response.text();
    try {
      const e = JSON.parse(text).error;
      if (e && typeof e.message === "string") {
        return new ApiError(response.status, e.code || "", e.message, e.field || null, e.request_id || null);
      }
    } catch (_) { /* not JSON: shown as it came */ }
    return new ApiError(response.status, "", text.trim() || response.statusText, null, null);
  }

  // One request; `read` is "json" or "blob". Latency covers the whole answer, body included.
  async function request(method, path, body, read) {
    const t0 = performance.now();
    let response;
    try {
      response = await fetch(apiUrl(path), {
        method, headers: headers(body !== undefined), cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      const err = new ApiError(0, "network_error", "the request did not reach the service: " + e.message, null, null);
      err.ms = performance.now() - t0;
      throw err;
    }
    if (!response.ok) {
      const err = await errorOf(response);
      err.ms = performance.now() - t0;
      throw err;
    }
    const data = read === "blob" ? await response.blob() : await response.json();
    return { data, response, ms: performance.now() - t0 };
  }

  // `"stream": true` on POST /v1/images: Server-Sent Events read from the fetch body (EventSource cannot POST
  // or send the key): `preview` events ({index, step, num_steps, seed, class_id, b64_json}) go to `onPreview`,
  // then `final` carries the non-stream answer; an `error` event carries the usual error body.
  async function streamImages(fields, onPreview) {
    const t0 = performance.now();
    let response;
    try {
      response = await fetch(apiUrl("v1/images"), {
        method: "POST", headers: { ...headers(true), Accept: "text/event-stream" }, cache: "no-store",
        body: JSON.stringify({ ...fields, stream: true }),
      });
    } catch (e) {
      const err = new ApiError(0, "network_error", "the request did not reach the service: " + e.message, null, null);
      err.ms = performance.now() - t0;
      throw err;
    }
    if (!response.ok) {
      const err = await errorOf(response);
      err.ms = performance.now() - t0;
      throw err;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (!data.length) continue; // a comment or keep-alive
          const payload = JSON.parse(data.join("\n"));
          if (name === "preview") onPreview(payload);
          else if (name === "final") return { data: payload, response, ms: performance.now() - t0 };
          else if (name === "error") {
            const e = payload.error || {};
            const err = new ApiError(0, e.code || "error", String(e.message), e.field || null, e.request_id || null);
            err.ms = performance.now() - t0;
            throw err;
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    const err = new ApiError(0, "stream_ended", "the stream ended before its final event", null, null);
    err.ms = performance.now() - t0;
    throw err;
  }

  // ---- showing results and errors ----------------------------------------------------------------------
  function showError(id, err) {
    const box = $(id);
    const code = err.code ? " " + err.code : "";
    box.querySelector(".status").textContent = err.status ? `HTTP ${err.status}${code}:` : `${err.code || "error"}:`;
    box.querySelector(".message").textContent = err.message; // verbatim
    box.querySelector(".field").textContent = [err.field && `(field: ${err.field})`,
      err.requestId && `· request ${err.requestId}`].filter(Boolean).join(" ");
    box.hidden = false;
  }

  function clearError(id) {
    const box = $(id);
    box.hidden = true;
    box.querySelectorAll("span").forEach((s) => { s.textContent = ""; });
  }

  function latency(panel, ms, detail) {
    $(panel + "-latency").textContent = `${Math.round(ms)} ms` + (detail ? ` · ${detail}` : "");
  }

  function setBlobUrl(panel, blob) {
    if (objectUrls[panel]) URL.revokeObjectURL(objectUrls[panel]);
    objectUrls[panel] = URL.createObjectURL(blob);
    return objectUrls[panel];
  }

  // A form's submit: busy button, error cleared, then `work()`; its ApiError is shown verbatim.
  function onSubmit(panel, work) {
    const form = $(panel + "-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      if (button.disabled) return;
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
      clearError(panel + "-error");
      $(panel + "-latency").textContent = "waiting…";
      try {
        await work();
      } catch (err) {
        if (!(err instanceof ApiError)) err = new ApiError(0, "page_error", String(err && err.message || err));
        showError(panel + "-error", err);
        if (err.ms !== null) latency(panel, err.ms, "failed");
        else $(panel + "-latency").textContent = "failed";
      } finally {
        button.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });
  }

  // A field's value for the JSON body: left out when empty; numbers as numbers, anything else as typed,
  // so the API (not the page) judges it and its message is the one shown.
  function value(id) {
    const raw = $(id).value.trim();
    if (raw === "") return undefined;
    const n = Number(raw);
    return $(id).type === "number" && Number.isFinite(n) ? n : raw;
  }

  function classId(id) { // the selected class's integer id (none: left out, and the API says so)
    const raw = $(id).value;
    return raw === "" ? undefined : Number(raw);
  }

  function body(fields) {
    const out = {};
    for (const [name, v] of Object.entries(fields)) if (v !== undefined) out[name] = v;
    return out;
  }

  // ---- models, tabs ---------------------------------------------------------------------------------
  function fillSelect(select, items, label) {
    const keep = select.value;
    select.replaceChildren(...items.map((item) => new Option(label(item), String(item.id))));
    if (items.some((item) => String(item.id) === keep)) select.value = keep;
  }

  function modelOf(modality) {
    const id = $(modality + "-model").value;
    return models.find((m) => m.modality === modality && m.id === id);
  }

  function onModelChange(modality) {
    const model = modelOf(modality);
    if (!model) return;
    const classes = $(modality + "-class");
    if (classes) fillSelect(classes, model.classes, (c) => (c.name === String(c.id) ? c.name : `${c.id} · ${c.name}`));
    if (modality === "speech") {
      const voices = (model.output && model.output.voices) || [];
      fillSelect($("speech-voice"), voices.map((v) => ({ id: v })), (v) => v.id);
      $("speech-voice-label").hidden = voices.length === 0;
    }
    const d = model.defaults || {};
    const hint = (id, v) => { if ($(id)) $(id).placeholder = v === undefined || v === null ? "model default" : `default ${v}`; };
    hint(modality + "-cfg", d.cfg_scale);
    hint(modality + "-steps", d.num_steps);
    hint(modality + "-temperature", d.temperature);
    if (modality === "video" && model.output && model.output.num_frames) {
      $("video-frames").max = String(model.output.num_frames);
      $("video-frames").placeholder = `all ${model.output.num_frames}`;
    }
  }

  function selectTab(modality, focus) {
    for (const m of MODALITIES) {
      const on = m === modality;
      $("tab-" + m).setAttribute("aria-selected", String(on));
      $("tab-" + m).tabIndex = on ? 0 : -1;
      $("panel-" + m).hidden = !on;
    }
    if (focus) $("tab-" + modality).focus();
  }

  function renderModels() {
    const present = MODALITIES.filter((m) => models.some((model) => model.modality === m));
    for (const m of MODALITIES) {
      $("tab-" + m).hidden = !present.includes(m); // no model of that modality: no tab
      fillSelect($(m + "-model"), models.filter((model) => model.modality === m), (model) => model.id);
      onModelChange(m);
    }
    const current = MODALITIES.find((m) => $("tab-" + m).getAttribute("aria-selected") === "true");
    if (present.length) selectTab(present.includes(current) ? current : present[0], false);
    else MODALITIES.forEach((m) => { $("panel-" + m).hidden = true; });
    $("models-state").textContent = present.length
      ? `${models.length} model(s): ${models.map((m) => `${m.id} (${m.modality})`).join(", ")}`
      : "no models loaded";
  }

  async function loadModels() {
    clearError("global-error");
    $("models-state").textContent = "loading the models…";
    try {
      models = (await request("GET", "v1/models", undefined, "json")).data.data || [];
    } catch (err) {
      models = [];
      showError("global-error", err);
    }
    renderModels();
    document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1); // for scripts: done
  }

  // ---- the API key ------------------------------------------------------------------------------------
  function renderKey() {
    const has = Boolean(sessionStorage.getItem(KEY_STORE));
    $("key-state").textContent = has ? "key in use (kept for this tab only)" : "no key (kept for this tab only)";
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    $("api-key").value = "";
    renderKey();
    loadModels();
  });

  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    $("api-key").value = "";
    renderKey();
    loadModels();
  });

  // ---- tabs: click, arrows, Home/End (WAI-ARIA tabs pattern) ---------------------------------------------
  $("tabs").addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) selectTab(tab.id.slice(4), false);
  });

  $("tabs").addEventListener("keydown", (event) => {
    const visible = MODALITIES.filter((m) => !$("tab-" + m).hidden);
    const at = visible.indexOf(document.activeElement.id.slice(4));
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: visible.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    selectTab(visible[(to + visible.length) % visible.length], true);
  });

  for (const m of MODALITIES) $(m + "-model").addEventListener("change", () => onModelChange(m));

  // ---- generators ---------------------------------------------------------------------------------------
  function figure(index) { // the grid's figure of image `index` (made on first use)
    let fig = $("image-grid").querySelector(`figure[data-index="${index}"]`);
    if (!fig) {
      fig = document.createElement("figure");
      fig.dataset.index = String(index);
      fig.append(new Image(), document.createElement("figcaption"));
      $("image-grid").append(fig);
    }
    return fig;
  }

  function showImage(index, item, note) {
    const names = new Map((modelOf("image") || { classes: [] }).classes.map((c) => [c.id, c.name]));
    const fig = figure(index);
    const img = fig.querySelector("img");
    img.src = "data:image/png;base64," + item.b64_json;
    img.alt = `generated image of class ${names.get(item.class_id) ?? item.class_id}, seed ${item.seed}`;
    fig.querySelector("figcaption").textContent = `class ${item.class_id} · seed ${item.seed}` + (note || "");
    return img;
  }

  onSubmit("image", async () => {
    const fields = body({
      model: value("image-model"), class_id: classId("image-class"), n: value("image-n"),
      seed: value("image-seed"), cfg_scale: value("image-cfg"), num_steps: value("image-steps"),
      temperature: value("image-temperature"),
    });
    const stream = $("image-stream").checked;
    let previews = 0;
    if (stream) $("image-grid").replaceChildren();
    const { data, ms } = stream
      ? await streamImages(fields, (p) => {
        previews += 1;
        showImage(p.index, p, ` · step ${p.step}/${p.num_steps}`);
      })
      : await request("POST", "v1/images", fields, "json");
    const images = data.data.map((item, i) => showImage(i, item, ""));
    for (const fig of [...$("image-grid").children]) if (Number(fig.dataset.index) >= images.length) fig.remove();
    await Promise.all(images.map((img) => img.decode()));
    latency("image", ms, `${data.data.length} image(s) from ${data.model}` + (stream ? ` · ${previews} preview(s)` : ""));
  });

  onSubmit("speech", async () => {
    const { data, ms } = await request("POST", "v1/speech", body({
      model: value("speech-model"), voice: value("speech-voice"), text: $("speech-text").value, seed: value("speech-seed"),
      speed: value("speech-speed"), response_format: "wav",
    }), "blob");
    const audio = $("speech-audio");
    const loaded = new Promise((resolve, reject) => {
      audio.addEventListener("loadedmetadata", resolve, { once: true });
      audio.addEventListener("error", () => reject(new Error("the browser could not decode the audio")), { once: true });
    });
    audio.src = setBlobUrl("speech", data);
    await loaded;
    latency("speech", ms, `${audio.duration.toFixed(2)} s of audio`);
    audio.play().catch(() => { /* autoplay refused: the controls play it */ });
  });

  onSubmit("video", async () => {
    const { data, response, ms } = await request("POST", "v1/videos", body({
      model: value("video-model"), class_id: classId("video-class"), seed: value("video-seed"),
      num_frames: value("video-frames"), cfg_scale: value("video-cfg"), num_steps: value("video-steps"),
      response_format: "gif",
    }), "blob");
    const img = $("video-out");
    img.src = setBlobUrl("video", data);
    img.alt = `generated clip of class ${$("video-class").selectedOptions[0]?.text ?? ""}, ` +
      `seed ${response.headers.get("X-Seed") ?? "?"}`;
    img.hidden = false;
    await img.decode();
    latency("video", ms, `${response.headers.get("X-Num-Frames") ?? "?"} frames from ${response.headers.get("X-Model") ?? "?"}`);
  });

  renderKey();
  loadModels();
})();
