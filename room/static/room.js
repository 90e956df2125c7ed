// The review room's one script: the queue's bulk approve and the review page's player,
// wall, flags, notes, keys and answer. No build step: a plain ES module.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const reviewerBox = $("#reviewer");
reviewerBox.value = localStorage.getItem("clipgate.reviewer") || "";
reviewerBox.addEventListener("change", () =>
  localStorage.setItem("clipgate.reviewer", reviewerBox.value.trim()),
);

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  let payload;
  try {
    payload = await response.json();
  } catch {
    payload = { detail: await response.text().catch(() => response.statusText) };
  }
  return { status: response.status, ...payload };
}

function say(box, text, kind) {
  box.hidden = false;
  box.className = `notice ${kind}`;
  box.textContent = text;
}

if (document.body.dataset.page === "queue") {
  setUpQueue();
} else if (document.body.dataset.page === "project") {
  setUpReview();
}

function setUpQueue() {
  const boxes = $$(".pick-one");
  const button = $("#bulk-approve");
  const count = $("#bulk-count");
  const all = $("#pick-all");
  const update = () => {
    const picked = boxes.filter((box) => box.checked).length;
    button.disabled = picked === 0;
    button.textContent = picked ? `Approve ${picked} selected` : "Approve selected";
    count.textContent = picked
      ? `${picked} waiting project${picked > 1 ? "s" : ""} selected`
      : "select waiting projects to approve them together";
  };
  boxes.forEach((box) => box.addEventListener("change", update));
  all?.addEventListener("change", () => {
    boxes.forEach((box) => (box.checked = all.checked));
    update();
  });
  button?.addEventListener("click", async () => {
    const projects = boxes.filter((box) => box.checked).map((box) => box.value);
    button.disabled = true;
    const result = await post("/approve", { projects, reviewer: reviewerBox.value.trim() });
    const box = $("#bulk-result");
    if (!result.results) {
      say(box, result.detail || "the approvals were refused", "error");
      return;
    }
    const refused = result.results.filter((one) => !one.accepted);
    const lines = result.results.map(
      (one) => `${one.project_id}: ${one.accepted ? "approved" : one.detail || one.decided_by}`,
    );
    say(box, lines.join("\n"), refused.length ? "error" : "done");
    setTimeout(() => location.reload(), refused.length ? 6000 : 1500);
  });
  // Keep the queue fresh while nobody is choosing.
  setInterval(() => {
    if (!boxes.some((box) => box.checked)) location.reload();
  }, 30000);
}

function setUpReview() {
  const data = JSON.parse($("#round-data").textContent);
  const clips = data.clips;
  if (!clips.length) return watchForChanges(data);
  const speeds = [1, 1.5, 2, 3];
  const saved = `clipgate.flags.${data.project}.${data.round}`;
  const flags = new Map(JSON.parse(sessionStorage.getItem(saved) || "[]"));
  const screens = [$("#screen-a"), $("#screen-b")];
  let active = 0;
  let index = 0;
  let speed = 2;
  let digits = "";
  let digitTimer = 0;

  const current = () => screens[active];
  const standby = () => screens[1 - active];

  function keepFlags() {
    sessionStorage.setItem(saved, JSON.stringify([...flags]));
  }

  function setRate(video) {
    video.defaultPlaybackRate = speed;
    video.playbackRate = speed;
  }

  function preload(video, clip) {
    if (!clip) return;
    if (video.dataset.src !== clip.src) {
      video.dataset.src = clip.src;
      video.src = clip.src;
      video.load();
    }
    setRate(video);
  }

  function show(next, { play = true } = {}) {
    index = Math.max(0, Math.min(clips.length - 1, next));
    const clip = clips[index];
    const previous = current();
    if (standby().dataset.src === clip.src) {
      active = 1 - active;
    } else {
      preload(current(), clip);
    }
    const video = current();
    previous.pause();
    if (previous !== video) previous.classList.add("standby");
    video.classList.remove("standby");
    video.loop = $("#loop").checked;
    if (video.readyState >= 1 && video.currentTime > 0 && video !== previous) video.currentTime = 0;
    setRate(video);
    if (play) video.play().catch(() => {});
    preloadNextOnceLoaded(video, index);
    describe();
  }

  // The next clip loads only once this one can play through: started together, the two
  // share the link and this clip's first frame comes later.
  function preloadNextOnceLoaded(video, shown) {
    const next = () => {
      if (current() === video && index === shown) preload(standby(), clips[shown + 1]);
    };
    if (video.readyState >= HTMLMediaElement.HAVE_ENOUGH_DATA) next();
    else video.addEventListener("canplaythrough", next, { once: true });
  }

  function unload(video) {
    video.pause();
    video.removeAttribute("src");
    delete video.dataset.src;
    video.load();
  }

  function describe() {
    const clip = clips[index];
    $("#clip-label").textContent = `Clip ${clip.number}/${clips.length}`;
    const attempt = clip.attempt > 1 ? ` · attempt ${clip.attempt}` : "";
    $("#clip-facts").textContent = `${clip.duration.toFixed(1)} s${attempt}`;
    $("#clip-prompt").textContent = clip.prompt || "";
    $("#jump").value = clip.number;
    const flagged = flags.has(clip.number);
    $("#flag").setAttribute("aria-pressed", String(flagged));
    $("#flag").classList.toggle("on", flagged);
    $("#flag-mark").hidden = !flagged;
    $("#note").value = flags.get(clip.number) || "";
    $$(".rail-item").forEach((item) => {
      const number = Number(item.dataset.number);
      item.classList.toggle("current", Number(item.dataset.index) === index);
      item.classList.toggle("flagged", flags.has(number));
      $(".rail-flag", item).hidden = !flags.has(number);
    });
    $(`.rail-item[data-index="${index}"]`)?.scrollIntoView({ block: "nearest" });
    const earlier = clip.earlier[clip.earlier.length - 1];
    $("#compare-toggle").hidden = !earlier;
    if (earlier) $("#compare-attempt").textContent = earlier.attempt;
    if (!earlier) $("#compare").hidden = true;
    if (!$("#compare").hidden) fillCompare();
    summarize();
  }

  function summarize() {
    const numbers = [...flags.keys()].sort((a, b) => a - b);
    $("#flag-summary").textContent = numbers.length
      ? `flagged: ${numbers.join(", ")}`
      : "no clip flagged";
    $$(".wall-tile").forEach((tile) =>
      tile.classList.toggle("flagged", flags.has(Number(tile.dataset.number))),
    );
    const summary = $("#decide-summary");
    if (!summary) return;
    summary.textContent = numbers.length
      ? `${numbers.length} flagged (${numbers.join(", ")}): Send flags makes ${
          numbers.length > 1 ? "them" : "it"
        } again; every other clip is kept.`
      : `Nothing flagged: approving sends all ${clips.length} clips on to narration.`;
    summary.classList.toggle("has-flags", numbers.length > 0);
  }

  function toggleFlag(number = clips[index].number) {
    if (!data.waiting) return;
    if (flags.has(number)) flags.delete(number);
    else flags.set(number, number === clips[index].number ? $("#note").value : "");
    keepFlags();
    describe();
  }

  function stamp() {
    const seconds = Math.floor(current().currentTime);
    const text = `at ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    const note = $("#note");
    note.value = note.value ? `${note.value.trimEnd()} ${text} ` : `${text} `;
    note.focus();
    note.selectionStart = note.selectionEnd = note.value.length;
    noteChanged();
  }

  function noteChanged() {
    const number = clips[index].number;
    const text = $("#note").value;
    if (!data.waiting) return;
    if (text.trim() && !flags.has(number)) flags.set(number, text);
    else if (flags.has(number)) flags.set(number, text);
    keepFlags();
    describe();
  }

  function setSpeed(value) {
    speed = value;
    $("#speed").value = String(value);
    screens.forEach(setRate);
    $$("#compare video, .wall-tile video").forEach(setRate);
  }

  function setLoop(on) {
    $("#loop").checked = on;
    current().loop = on;
  }

  function fillCompare() {
    const clip = clips[index];
    const earlier = clip.earlier[clip.earlier.length - 1];
    if (!earlier) return;
    $("#earlier-attempt").textContent = earlier.attempt;
    $("#earlier-why").textContent = earlier.round ? `(flagged in round ${earlier.round})` : "";
    $("#current-attempt").textContent = clip.attempt;
    const notes = $("#earlier-notes");
    notes.replaceChildren(
      ...(earlier.notes.length ? earlier.notes : ["no note was given"]).map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      }),
    );
    for (const [video, src] of [
      [$("#earlier-video"), earlier.src],
      [$("#current-video"), clip.src],
    ]) {
      if (video.dataset.src !== src) {
        video.dataset.src = src;
        video.src = src;
      }
      setRate(video);
      video.currentTime = 0;
      video.play().catch(() => {});
    }
  }

  function toggleCompare() {
    if (!clips[index].earlier.length) return;
    const panel = $("#compare");
    panel.hidden = !panel.hidden;
    if (panel.hidden) {
      $$("#compare video").forEach((video) => video.pause());
      current().play().catch(() => {});
    } else {
      current().pause();
      fillCompare();
      panel.scrollIntoView({ block: "nearest" });
    }
  }

  function buildWall() {
    const wall = $("#wall");
    if (wall.childElementCount) return;
    for (const clip of clips) {
      const tile = document.createElement("figure");
      tile.className = "wall-tile";
      tile.dataset.number = clip.number;
      const video = document.createElement("video");
      Object.assign(video, { muted: true, loop: true, autoplay: true, playsInline: true });
      video.preload = "auto";
      video.poster = clip.thumb;
      video.src = clip.proxy;
      setRate(video);
      const caption = document.createElement("figcaption");
      caption.innerHTML = `<span class="num"></span><button class="wall-flag" title="flag this clip">flag</button>`;
      $(".num", caption).textContent = `${clip.number}${clip.attempt > 1 ? ` · attempt ${clip.attempt}` : ""}`;
      $(".wall-flag", caption).addEventListener("click", (event) => {
        event.stopPropagation();
        toggleFlag(clip.number);
      });
      video.addEventListener("click", () => setMode("player", { at: clips.indexOf(clip) }));
      tile.append(video, caption);
      wall.append(tile);
    }
    summarize();
  }

  function setMode(mode, { at = index } = {}) {
    const wall = mode === "wall";
    $("#wall").hidden = !wall;
    $("#player").hidden = wall;
    $$(".mode").forEach((button) => button.classList.toggle("active", button.dataset.mode === mode));
    if (wall) {
      // The player's two clips would keep downloading beside the wall's 18 proxies.
      $$(".screen-video").forEach(unload);
      buildWall();
      $$(".wall-tile video").forEach((video) => {
        setRate(video);
        video.play().catch(() => {});
      });
    } else {
      $$(".wall-tile video").forEach((video) => video.pause());
      if (at !== index || !current().dataset.src) show(at);
    }
  }

  function fullScreen() {
    const target = $("#compare").hidden ? $("#screen") : $("#compare");
    if (document.fullscreenElement) document.exitFullscreen();
    else target.requestFullscreen?.().catch(() => {});
  }

  function jumpTyped(digit) {
    digits += digit;
    clearTimeout(digitTimer);
    const number = Number(digits);
    const done = digits.length >= String(clips.length).length || number * 10 > clips.length;
    const go = () => {
      const target = clips.findIndex((clip) => clip.number === Number(digits));
      digits = "";
      if (target >= 0) show(target);
    };
    if (done) go();
    else digitTimer = setTimeout(go, 700);
  }

  async function answer(decision) {
    const box = $("#answer-result");
    if (!box) return;
    const numbers = [...flags.keys()].sort((a, b) => a - b);
    const body = {
      decision,
      clips: decision === "flag" ? numbers : [],
      notes:
        decision === "flag"
          ? numbers
              .filter((number) => (flags.get(number) || "").trim())
              .map((number) => ({ clip: number, note: flags.get(number).trim() }))
          : [],
      reviewer: reviewerBox.value.trim(),
      round: data.round,
    };
    if (decision === "approve" && numbers.length) body.clips = numbers;
    $$(".decide button").forEach((button) => (button.disabled = true));
    say(box, "Sending …", "pending");
    const result = await post(`/projects/${encodeURIComponent(data.project)}/answer`, body);
    if (result.status === 200 && result.accepted) {
      say(box, `Sent. ${result.message}`, "done");
      sessionStorage.removeItem(saved);
      data.waiting = false;
      document.querySelector("main.review")?.classList.add("readonly");
      watchForChanges(data);
      return;
    }
    if (result.status === 409 && result.decided_by) {
      say(box, `Not sent: ${result.decided_by}.`, "error");
      data.waiting = false;
      return;
    }
    say(box, result.detail || `refused (${result.status})`, "error");
    $$(".decide button").forEach((button) => (button.disabled = false));
  }

  for (const video of screens) {
    video.addEventListener("ended", () => {
      if (video !== current() || video.loop) return;
      if (index < clips.length - 1) show(index + 1);
    });
  }
  $("#prev").addEventListener("click", () => show(index - 1));
  $("#next").addEventListener("click", () => show(index + 1));
  $("#play").addEventListener("click", () =>
    current().paused ? current().play().catch(() => {}) : current().pause(),
  );
  $("#jump").addEventListener("change", (event) => {
    const target = clips.findIndex((clip) => clip.number === Number(event.target.value));
    if (target >= 0) show(target);
  });
  $("#speed").addEventListener("change", (event) => setSpeed(Number(event.target.value)));
  $("#loop").addEventListener("change", (event) => setLoop(event.target.checked));
  $("#fullscreen").addEventListener("click", fullScreen);
  $("#compare-toggle").addEventListener("click", toggleCompare);
  $("#flag").addEventListener("click", () => toggleFlag());
  $("#stamp").addEventListener("click", stamp);
  $("#note").addEventListener("input", noteChanged);
  $$(".mode").forEach((button) =>
    button.addEventListener("click", () => setMode(button.dataset.mode)),
  );
  $$(".rail-pick").forEach((button) =>
    button.addEventListener("click", () =>
      setMode("player", { at: Number(button.closest(".rail-item").dataset.index) }),
    ),
  );
  $("#approve")?.addEventListener("click", () => answer("approve"));
  $("#send-flags")?.addEventListener("click", () => answer("flag"));

  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest?.("input, textarea, select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      ArrowRight: () => show(index + 1),
      k: () => show(index + 1),
      ArrowLeft: () => show(index - 1),
      j: () => show(index - 1),
      Home: () => show(0),
      End: () => show(clips.length - 1),
      " ": () => $("#play").click(),
      s: () => setSpeed(speeds[(speeds.indexOf(speed) + 1) % speeds.length]),
      l: () => setLoop(!$("#loop").checked),
      ",": () => (current().currentTime = Math.max(0, current().currentTime - 0.5)),
      ".": () => (current().currentTime += 0.5),
      f: fullScreen,
      w: () => setMode("wall"),
      p: () => setMode("player"),
      c: toggleCompare,
      x: () => toggleFlag(),
      n: () => $("#note").focus(),
      t: stamp,
      g: () => $("#jump").select(),
      A: () => answer("approve"),
      S: () => answer("flag"),
    };
    if (/^[0-9]$/.test(event.key)) {
      event.preventDefault();
      jumpTyped(event.key);
      return;
    }
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  setSpeed(2);
  show(0);
  if (!data.waiting) watchForChanges(data);
}

// While a round is being made or answered elsewhere, reload once the page would differ.
function watchForChanges(data) {
  const url = `/projects/${encodeURIComponent(data.project)}/state`;
  const timer = setInterval(async () => {
    const response = await fetch(url).catch(() => null);
    if (!response?.ok) return;
    const state = await response.json();
    if (state.round !== data.round || state.status !== data.status || state.waiting !== data.waiting) {
      clearInterval(timer);
      location.reload();
    }
  }, 2000);
}
