/* The meeting page: joins a session on the media node the controller placed it on (protocol/meeting.py).
 *
 * Two peer connections, so offers never cross: "publish" (this page offers its microphone, camera and screen,
 * the node answers) and "subscribe" (the node offers one m-line per slot, this page answers). The node's
 * aiortc does not trickle ICE, so each side sends a complete description after gathering. The node says which
 * participant each subscribe m-line carries ("slots"); tiles follow the slots.
 * No framework and nothing from another origin: the page's CSP allows this script and the node's WebSocket.
 *
 * Rejoining: when the WebSocket closes without a final "closed" (removed, ended, locked, full, replaced) or a
 * peer connection's ICE fails, the page drops its connections (keeping its camera, microphone, screen and mute
 * state), asks the controller for a fresh pass after a backoff with jitter, and says hello with the resume key
 * of its last welcome, so the node takes it back as the same participant. It gives up after RECONNECT_FOR_MS,
 * or at once when the controller or the node refuses it for good.
 */
(() => {
  "use strict";
  const root = document.getElementById("meeting");
  if (!root) return;
  const T = JSON.parse(document.getElementById("texts").textContent);
  const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const role = root.dataset.role;
  const $ = (id) => document.getElementById(id);
  const RETRY_FIRST_MS = 500;
  const RETRY_MAX_MS = 8000;
  const RECONNECT_FOR_MS = 90000;
  const ICE_GRACE_MS = 4000;
  const FINAL = ["removed", "ended", "locked", "full", "replaced", "left"];

  const st = {
    ws: null, info: null, welcome: null, me: null, role,
    pub: null, sub: null, pubBusy: Promise.resolve(),
    local: null, mic: null, cam: null, screen: null, screenTx: null,
    micOn: true, camOn: true, screenOn: false, hand: false, mutedByHost: false,
    slots: {}, roster: [], speakers: [], closed: null, locked: false,
    audioEls: {},
    gen: 0, resume: null, attempt: 0, dropAt: null, retryTimer: null, passes: 0, rejoins: 0,
    reconnectForMs: RECONNECT_FOR_MS,
  };
  window.ketnoiMeeting = st;

  function notice(text, bad) {
    const el = $("notice");
    el.textContent = text || "";
    el.className = bad ? "bad" : "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  // ----- devices -----

  async function openDevices() {
    if (role === "observer") return;
    const micId = $("mic-select").value;
    const camId = $("cam-select").value;
    const wanted = {
      audio: micId ? { deviceId: { exact: micId } } : true,
      video: camId ? { deviceId: { exact: camId }, width: { ideal: 640 }, height: { ideal: 360 } }
        : { width: { ideal: 640 }, height: { ideal: 360 } },
    };
    try {
      const stream = await navigator.mediaDevices.getUserMedia(wanted);
      if (st.local) st.local.getTracks().forEach((t) => t.stop());
      st.local = stream;
      st.mic = stream.getAudioTracks()[0] || null;
      st.cam = stream.getVideoTracks()[0] || null;
      $("preview").srcObject = stream;
      await listDevices();
    } catch (error) {
      notice(`${T.no_devices} ${error.name}`, true);
    }
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [kind, select, track] of [["audioinput", $("mic-select"), st.mic], ["videoinput", $("cam-select"), st.cam]]) {
      const current = track ? track.getSettings().deviceId : select.value;
      select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
        el("option", { value: d.deviceId, textContent: d.label || `${kind} ${i + 1}`, selected: d.deviceId === current })));
    }
  }

  async function switchDevice(kind) {
    const id = (kind === "audio" ? $("mic-select") : $("cam-select")).value;
    const constraints = kind === "audio" ? { audio: { deviceId: { exact: id } } }
      : { video: { deviceId: { exact: id }, width: { ideal: 640 }, height: { ideal: 360 } } };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    const old = kind === "audio" ? st.mic : st.cam;
    track.enabled = kind === "audio" ? st.micOn && !st.mutedByHost : st.camOn;
    if (st.pub) {
      const sender = st.pub.getSenders().find((s) => s.track === old);
      if (sender) await sender.replaceTrack(track);
    }
    if (old) old.stop();
    if (kind === "audio") st.mic = track; else st.cam = track;
    $("preview").srcObject = new MediaStream([st.mic, st.cam].filter(Boolean));
    const self = document.querySelector(".tile.self video");
    if (self && st.cam) self.srcObject = new MediaStream([st.cam]);
  }

  // ----- signalling -----

  function send(message) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) st.ws.send(JSON.stringify(message));
  }

  async function gathered(pc) {
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000); // a slow candidate must not hold the call: send what was gathered
    });
  }

  function newPeer() {
    const pc = new RTCPeerConnection({ iceServers: st.info.ice_servers, bundlePolicy: "max-bundle" });
    const gen = st.gen;
    // ICE lost: "failed" at once; "disconnected" only if it does not come back by itself within ICE_GRACE_MS.
    pc.addEventListener("connectionstatechange", () => {
      if (gen !== st.gen) return;
      if (pc.connectionState === "failed") drop();
      else if (pc.connectionState === "disconnected") {
        setTimeout(() => { if (gen === st.gen && pc.connectionState === "disconnected") drop(); }, ICE_GRACE_MS);
      }
    });
    return pc;
  }

  // Whether a codec capability is `mime` as the node's aiortc takes it: for H.264, packetization-mode 1 in
  // (constrained) baseline.
  function codecFits(c, mime) {
    const fmtp = c.sdpFmtpLine || "";
    return c.mimeType.toLowerCase() === mime
      && (mime !== "video/h264" || (/packetization-mode=1/.test(fmtp) && /profile-level-id=42(e0|00)/i.test(fmtp)));
  }

  function preferCodec(transceiver, kind) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const caps = RTCRtpReceiver.getCapabilities(kind);
    if (!caps) return;
    const mime = kind === "audio" ? "audio/opus" : `video/${st.welcome.codec}`.toLowerCase();
    // H.264: 42e01f first.
    const chosen = caps.codecs.filter((c) => codecFits(c, mime))
      .sort((a, b) => (/42e0/i.test(b.sdpFmtpLine || "") ? 1 : 0) - (/42e0/i.test(a.sdpFmtpLine || "") ? 1 : 0));
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase().endsWith("/rtx"));
    if (chosen.length) transceiver.setCodecPreferences(chosen.concat(rest));
  }

  async function join() {
    $("join").disabled = true;
    notice(T.joining);
    if (role !== "observer" && !st.local) await openDevices();
    await connect();
  }

  function refusal(answer) {
    const local = { timeZone: "Asia/Ho_Chi_Minh", dateStyle: "short", timeStyle: "short" };
    const when = answer.reason === "too_early" && answer.starts_at
      ? ` ${new Date(answer.starts_at).toLocaleString(document.documentElement.lang === "en" ? "en-GB" : "vi-VN", local)} (Asia/Ho_Chi_Minh)`
      : "";
    return `${T.refused} ${T[answer.reason] || answer.error}${when}`;
  }

  // A pass from the controller (the join link is the credential), then the WebSocket. While rejoining, a refusal
  // that a retry cannot change (a 4xx but 429: the link, the window, the session) ends it; the rest is retried.
  async function connect() {
    let answer;
    let response;
    st.passes += 1;
    try {
      response = await fetch("/api/meetings/join", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, name: $("name").value.trim() }),
      });
      answer = await response.json();
    } catch (error) {
      if (st.resume) return drop();
      notice(`${T.refused} ${error}`, true);
      $("join").disabled = false;
      return;
    }
    if (!response.ok) {
      const lasting = response.status >= 400 && response.status < 500 && response.status !== 429;
      if (st.resume && !lasting) return drop();
      if (st.resume) return closed({ reason: answer.reason || "refused", message: refusal(answer), final: true });
      notice(refusal(answer), true);
      root.dataset.state = "refused";
      $("join").disabled = false;
      return;
    }
    st.info = answer;
    const gen = st.gen;
    const ws = st.ws = new WebSocket(answer.ws_url);
    ws.onopen = () => ws.send(JSON.stringify(st.resume ? { type: "hello", token: answer.token, resume: st.resume }
      : { type: "hello", token: answer.token }));
    ws.onmessage = (event) => { if (gen === st.gen) handle(JSON.parse(event.data)).catch((error) => console.error(error)); };
    ws.onclose = () => { if (gen === st.gen && !st.closed) drop(); };
  }

  // The connection is gone but the participant is not: keep the devices and their state, try again.
  function drop(why) {
    if (st.closed) return;
    if (!st.resume) return closed(why || { reason: "protocol", message: "" });
    teardown();
    if (st.retryTimer) return;
    st.dropAt = st.dropAt || Date.now();
    if (Date.now() - st.dropAt > st.reconnectForMs) return closed({ reason: "gave_up", message: "" });
    root.dataset.state = "reconnecting";
    notice(T.reconnecting, true);
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** st.attempt);
    st.attempt += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    st.retryTimer = setTimeout(() => { st.retryTimer = null; connect(); }, delay);
  }

  // Everything of the connection that was: the socket, both peer connections and what others sent.
  function teardown() {
    st.gen += 1;
    const ws = st.ws;
    st.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
    }
    for (const pc of [st.pub, st.sub]) if (pc) pc.close();
    st.pub = st.sub = st.micTx = st.camTx = st.screenTx = null;
    st.pubBusy = Promise.resolve();
    st.slots = {};
    st.speakers = [];
    for (const audio of Object.values(st.audioEls)) audio.remove();
    st.audioEls = {};
    for (const tile of [...$("grid").children]) if (!tile.dataset.self) tile.remove();
  }

  async function handle(message) {
    switch (message.type) {
      case "welcome": return welcome(message);
      case "publish_answer": return st.pub.setRemoteDescription({ type: "answer", sdp: message.sdp });
      case "subscribe_offer": return subscribeOffer(message);
      case "slots": st.slots = message.slots; return renderGrid();
      case "roster": st.roster = message.participants; st.locked = message.locked; return renderPeople();
      case "speakers": st.speakers = message.ids; renderPeople(); return renderGrid();
      case "muted": return mutedByHost(message.muted);
      case "role":
        st.welcome.role = message.role;
        st.role = message.role;
        $("share-btn").hidden = !st.welcome.may_publish || (st.welcome.class_mode && !["host", "presenter"].includes(message.role));
        return renderPeople();
      case "error": console.warn("meeting:", message.code, message.message); if (message.fatal) notice(message.message, true); return;
      case "closed": return FINAL.includes(message.reason) ? closed(message) : drop(message);
    }
  }

  // Whether this browser sends (when it publishes) and receives the session's video codec as the node takes it.
  function supports(codec, publishes) {
    const mime = `video/${codec}`.toLowerCase();
    const sides = publishes ? [window.RTCRtpSender, window.RTCRtpReceiver] : [window.RTCRtpReceiver];
    return sides.every((side) => {
      const caps = side && side.getCapabilities ? side.getCapabilities("video") : null;
      return Boolean(caps && caps.codecs.some((c) => codecFits(c, mime)));
    });
  }

  async function welcome(message) {
    if (!supports(message.codec, message.may_publish)) {
      // Better said now than a silent tile: an H.264 session needs a browser with an H.264 encoder and decoder.
      send({ type: "leave" });
      return closed({ reason: "codec", final: true, message: `${T.no_codec} (${message.codec})` });
    }
    if (st.resume) st.rejoins += 1;
    st.welcome = message;
    st.role = message.role;
    st.me = message.participant;
    st.resume = message.resume;
    st.attempt = 0;
    st.dropAt = null;
    st.hand = message.hand;
    root.dataset.state = "joined";
    root.dataset.participant = message.participant;
    $("lobby").hidden = true;
    $("stage").hidden = false;
    $("controls").hidden = false;
    notice(message.role === "observer" ? T.observer_note : st.rejoins ? T.reconnected : "");
    $("host-panel").hidden = message.role !== "host";
    for (const id of ["mic-btn", "cam-btn", "share-btn", "hand-btn"]) $(id).hidden = !message.may_publish;
    $("share-btn").hidden = !message.may_publish || (message.class_mode && !["host", "presenter"].includes(message.role));
    $("hand-btn").hidden = !message.may_publish || message.role === "host";
    st.mutedByHost = message.muted_by_host;
    if (message.muted_by_host) {
      st.micOn = false;
      notice(message.class_mode && message.role === "student" ? T.class_muted : T.muted_by_host);
    }
    const old = document.querySelector(".tile.self");
    if (old) old.remove();
    if (message.may_publish && st.local) {
      const video = el("video", { autoplay: true, playsInline: true, muted: true });
      video.srcObject = new MediaStream(st.local.getVideoTracks());
      const tile = el("div", { class: "tile self", "data-self": "true" }, video,
        el("span", { class: "label" }, `${message.name} (${T.you})`));
      $("grid").prepend(tile);
      video.play().catch(() => {});
    }
    renderControls();
    if (message.may_publish) await publish();
  }

  function publish() {
    st.pubBusy = st.pubBusy.then(async () => {
      if (!st.pub) {
        st.pub = newPeer();
        if (st.mic) {
          st.mic.enabled = st.micOn && !st.mutedByHost;
          st.micTx = st.pub.addTransceiver(st.mic, { direction: "sendonly", streams: [st.local] });
          preferCodec(st.micTx, "audio");
        }
        if (st.cam) {
          st.cam.enabled = st.camOn;
          st.camTx = st.pub.addTransceiver(st.cam, { direction: "sendonly", streams: [st.local] });
          preferCodec(st.camTx, "video");
        }
        const screen = st.screenOn && st.screen ? st.screen.getVideoTracks()[0] : null;
        if (screen && screen.readyState === "live") { // a rejoin while sharing: share again
          st.screenTx = st.pub.addTransceiver(screen, { direction: "sendonly" });
          preferCodec(st.screenTx, "video");
        }
      }
      if (!st.micTx && !st.camTx && !st.screenTx) return;
      const pc = st.pub;
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (pc !== st.pub) return; // dropped meanwhile: the rejoin publishes afresh
      const tracks = [];
      if (st.micTx) tracks.push({ mid: st.micTx.mid, source: "microphone" });
      if (st.camTx) tracks.push({ mid: st.camTx.mid, source: "camera" });
      if (st.screenTx) tracks.push({ mid: st.screenTx.mid, source: "screen" });
      send({ type: "publish_offer", sdp: pc.localDescription.sdp, tracks });
      sendState();
    });
    return st.pubBusy;
  }

  async function subscribeOffer(message) {
    if (!st.sub) {
      st.sub = newPeer();
      st.sub.ontrack = () => renderGrid();
    }
    const pc = st.sub;
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (pc !== st.sub) return; // dropped meanwhile
    send({ type: "subscribe_answer", version: message.version, sdp: pc.localDescription.sdp });
    renderGrid();
  }

  function sendState() {
    if (!st.welcome || !st.welcome.may_publish) return;
    send({ type: "media_state", microphone: Boolean(st.mic) && st.micOn && !st.mutedByHost, camera: Boolean(st.cam) && st.camOn, screen: st.screenOn });
  }

  function mutedByHost(muted) {
    st.mutedByHost = muted;
    if (muted) {
      st.micOn = false;
      if (st.mic) st.mic.enabled = false;
      notice(st.welcome.class_mode && st.role === "student" ? T.class_muted : T.muted_by_host);
    } else {
      st.hand = false;
      notice(T.unmuted_by_host);
    }
    renderControls();
  }

  function closed(message) {
    if (st.retryTimer) clearTimeout(st.retryTimer);
    st.retryTimer = null;
    teardown();
    st.closed = message;
    root.dataset.state = "closed";
    root.dataset.closed = message.reason;
    notice(message.final ? message.message : T[`closed_${message.reason}`] || message.message || message.reason,
      message.reason !== "left");
    if (st.local) st.local.getTracks().forEach((t) => t.stop());
    if (st.screen) st.screen.getTracks().forEach((t) => t.stop());
    $("controls").hidden = true;
    $("grid").replaceChildren();
    // A dropped connection or an expired pass: joining again asks the controller for a new pass (a reload).
    $("rejoin").hidden = ["removed", "ended", "locked", "full"].includes(message.reason) || Boolean(message.final);
  }

  // ----- what is shown -----

  function person(id) {
    return st.roster.find((p) => p.id === id);
  }

  function transceiverFor(mid) {
    return st.sub ? st.sub.getTransceivers().find((t) => t.mid === mid) : null;
  }

  function renderGrid() {
    const grid = $("grid");
    const wanted = new Map();
    for (const [mid, slot] of Object.entries(st.slots)) {
      const transceiver = transceiverFor(mid);
      if (!transceiver || !slot.participant) continue;
      if (slot.source === "microphone") {
        let audio = st.audioEls[mid];
        if (!audio) {
          audio = st.audioEls[mid] = el("audio", { autoplay: true });
          audio.srcObject = new MediaStream([transceiver.receiver.track]);
          document.body.append(audio);
          audio.play().catch(() => {});
        }
        continue;
      }
      wanted.set(mid, slot);
    }
    for (const tile of [...grid.children]) if (!tile.dataset.self && !wanted.has(tile.dataset.mid)) tile.remove();
    for (const [mid, slot] of wanted) {
      let tile = grid.querySelector(`[data-mid="${CSS.escape(mid)}"]`);
      if (!tile) {
        const video = el("video", { autoplay: true, playsInline: true, muted: true });
        video.srcObject = new MediaStream([transceiverFor(mid).receiver.track]);
        tile = el("div", { class: "tile", "data-mid": mid }, video, el("span", { class: "label" }));
        grid.append(tile);
        video.play().catch(() => {});
      }
      const who = person(slot.participant);
      tile.dataset.participant = slot.participant;
      tile.classList.toggle("screen", slot.source === "screen");
      tile.classList.toggle("speaking", st.speakers.includes(slot.participant));
      tile.querySelector(".label").textContent = (who ? who.name : "…") + (slot.source === "screen" ? ` (${T.share})` : "");
    }
  }

  function renderPeople() {
    const list = $("people");
    const amHost = st.role === "host";
    list.replaceChildren(...st.roster.map((p) => {
      const badges = [];
      if (p.hand) badges.push(el("span", { class: "badge hand" }, `✋ ${T.hand}`));
      if (st.speakers.includes(p.id)) badges.push(el("span", { class: "badge" }, T.speaking));
      if (!p.microphone || p.muted_by_host) badges.push(el("span", { class: "badge" }, "🔇"));
      const item = el("li", { "data-participant": p.id, class: st.speakers.includes(p.id) ? "speaking" : "" },
        el("span", { class: "who" }, p.name + (p.id === st.me ? ` (${T.you})` : "")), " ",
        el("span", { class: "badge" }, T[`role_${p.role}`] || p.role), ...badges);
      if (amHost && p.id !== st.me) {
        const actions = el("div", { class: "actions" });
        const add = (action, label) => actions.append(el("button", { type: "button", "data-action": action, "data-target": p.id, textContent: label }));
        if (p.role !== "observer") {
          if (p.muted_by_host) add("allow_speak", T.allow_speak); else add("mute", T.mute);
          if (!["presenter", "host"].includes(p.role)) add("promote", T.promote);
        }
        add("remove", T.remove);
        item.append(actions);
      }
      return item;
    }));
    $("locked").hidden = !st.locked;
    $("lock-btn").textContent = st.locked ? T.unlock : T.lock;
    $("lock-btn").dataset.host = st.locked ? "unlock" : "lock";
  }

  function renderControls() {
    const micLive = st.micOn && !st.mutedByHost;
    $("mic-btn").textContent = micLive ? T.mic_off : T.mic_on;
    $("mic-btn").classList.toggle("off", !micLive);
    $("mic-btn").disabled = st.mutedByHost;
    $("cam-btn").textContent = st.camOn ? T.cam_off : T.cam_on;
    $("cam-btn").classList.toggle("off", !st.camOn);
    $("share-btn").textContent = st.screenOn ? T.stop_share : T.share;
    $("hand-btn").textContent = st.hand ? T.lower_hand : T.raise_hand;
  }

  // ----- controls -----

  async function toggleScreen() {
    if (st.screenOn) {
      if (st.screen) st.screen.getTracks().forEach((t) => t.stop());
      if (st.screenTx) await st.screenTx.sender.replaceTrack(null);
      st.screenOn = false;
      sendState();
      renderControls();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (error) {
      notice(`${T.no_devices} ${error.name}`, true);
      return;
    }
    st.screen = stream;
    const track = stream.getVideoTracks()[0];
    track.addEventListener("ended", () => { if (st.screenOn) toggleScreen(); });
    st.screenOn = true;
    if (st.screenTx) {
      await st.screenTx.sender.replaceTrack(track);
      sendState();
    } else {
      st.screenTx = st.pub.addTransceiver(track, { direction: "sendonly" });
      preferCodec(st.screenTx, "video");
      await publish();
    }
    renderControls();
  }

  $("join").addEventListener("click", join);
  $("rejoin").addEventListener("click", () => location.reload());
  $("mic-btn").addEventListener("click", () => {
    if (st.mutedByHost) return;
    st.micOn = !st.micOn;
    if (st.mic) st.mic.enabled = st.micOn;
    sendState();
    renderControls();
  });
  $("cam-btn").addEventListener("click", () => {
    st.camOn = !st.camOn;
    if (st.cam) st.cam.enabled = st.camOn;
    sendState();
    renderControls();
  });
  $("share-btn").addEventListener("click", () => toggleScreen());
  $("hand-btn").addEventListener("click", () => {
    st.hand = !st.hand;
    send({ type: "hand", raised: st.hand });
    renderControls();
  });
  $("leave-btn").addEventListener("click", () => {
    send({ type: "leave" });
    closed({ reason: "left", message: "" });
  });
  $("mic-select").addEventListener("change", () => (st.welcome ? switchDevice("audio") : openDevices()));
  $("cam-select").addEventListener("change", () => (st.welcome ? switchDevice("video") : openDevices()));
  $("host-panel").addEventListener("click", (event) => {
    const action = event.target.dataset && event.target.dataset.host;
    if (action) send({ type: "host_action", action });
  });
  $("people").addEventListener("click", (event) => {
    const data = event.target.dataset || {};
    if (data.action) send({ type: "host_action", action: data.action, target: data.target });
  });

  // For tests and support staff: what this page receives and sends, from getStats.
  st.stats = async () => {
    const out = { inbound: [], outbound: [] };
    for (const [name, pc] of [["sub", st.sub], ["pub", st.pub]]) {
      if (!pc) continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "inbound-rtp") {
          const slot = st.slots[s.mid] || {};
          out.inbound.push({ pc: name, mid: s.mid, kind: s.kind, participant: slot.participant || null, source: slot.source || null,
            framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0,
            audioLevel: s.audioLevel || 0, totalAudioEnergy: s.totalAudioEnergy || 0, bytesReceived: s.bytesReceived || 0,
            codec: s.codecId && report.get(s.codecId) ? report.get(s.codecId).mimeType : null });
        } else if (s.type === "outbound-rtp") {
          out.outbound.push({ pc: name, kind: s.kind, packetsSent: s.packetsSent || 0, bytesSent: s.bytesSent || 0,
            framesEncoded: s.framesEncoded || 0, encoder: s.encoderImplementation || null,
            codec: s.codecId && report.get(s.codecId) ? report.get(s.codecId).mimeType : null });
        }
      });
    }
    return out;
  };

  if (role !== "observer") openDevices(); else $("device-pickers").hidden = true;
})();
