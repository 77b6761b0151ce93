/*
 * The parent's live view page: asks the controller to watch a camera (POST /api/live/watch), plays it with
 * KetnoiWhep (whep-player.js), shows connecting / live / stopped and why it stopped (the controller's reason:
 * outside the window, consent, access revoked, the school's camera failing...). No inline script (CSP).
 */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) {
    return;
  }
  var texts = JSON.parse(root.getAttribute("data-texts") || "{}");
  var csrf = root.getAttribute("data-csrf") || "";
  var box = document.getElementById("player");
  var video = document.getElementById("video");
  var statusLine = document.getElementById("status");
  var stopButton = document.getElementById("stop");
  var playing = document.getElementById("playing");
  var devices = document.getElementById("devices");
  var current = null;

  function text(key) {
    return texts[key] || key;
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "d-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function deviceId() {
    // One id per browser, so the device limit counts phones and tablets, not tabs.
    try {
      var id = localStorage.getItem("ketnoi-device");
      if (!id) {
        id = randomId();
        localStorage.setItem("ketnoi-device", id);
      }
      return id;
    } catch (e) {
      return randomId();
    }
  }

  function localTime(iso) {
    return iso ? iso.replace("T", " ").slice(0, 16) : "";
  }

  function show(state, reason, extra) {
    statusLine.setAttribute("data-state", state);
    statusLine.setAttribute("data-reason", reason || "");
    var line = text(state);
    if (reason) {
      line += ": " + text(reason);
    }
    if (extra) {
      line += " " + extra;
    }
    statusLine.textContent = line;
  }

  function api(method, path, body) {
    return fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body ? JSON.stringify(body) : undefined
    }).then(function (response) {
      return response.json().then(function (json) { return { status: response.status, body: json }; });
    });
  }

  function whyStopped(session, playerReason) {
    // The controller knows why better than the player: a revocation, the window's end, the camera failing.
    return fetch("/api/live/status?session=" + encodeURIComponent(session), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (view) {
        if (view && view.publish_state === "failed") { return "publish_failed"; }
        if (view && view.end_reason) { return view.end_reason; }
        return playerReason === "left" ? "stopped_by_viewer" : (playerReason || "never_played");
      }, function () { return "network"; });
  }

  function stopCurrent(tellController) {
    if (!current) {
      return;
    }
    var entry = current;
    current = null;
    if (entry.player) {
      entry.player.stop();
    }
    if (tellController) {
      api("POST", "/api/live/end", { session: entry.session }).then(refreshDevices, function () {});
    }
  }

  function refreshDevices() {
    fetch("/api/live/cameras", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (overview) {
        if (overview && devices) { devices.textContent = String(overview.devices_in_use); }
      }, function () {});
  }

  function watch(button) {
    stopCurrent(true);
    box.hidden = false;
    playing.textContent = button.getAttribute("data-label") || "";
    show("connecting");
    api("POST", "/api/live/watch", {
      camera: Number(button.getAttribute("data-camera")),
      child_id: Number(button.getAttribute("data-child")),
      device: deviceId()
    }).then(function (answer) {
      if (answer.status !== 200) {
        var extra = answer.body.next_open ? text("next_open") + " " + localTime(answer.body.next_open) : "";
        show("stopped", answer.body.reason || "network", extra);
        return;
      }
      var started = answer.body;
      var entry = { session: started.session, player: null };
      current = entry;
      refreshDevices();
      entry.player = KetnoiWhep.play({
        video: video,
        nodeUrl: started.node_url,
        room: started.room,
        token: started.token,
        iceServers: started.ice_servers,
        onStatus: function (status) {
          if (status.state !== "stopped") {
            if (current === entry) { show(status.state); }
            return;
          }
          whyStopped(entry.session, status.reason).then(function (reason) {
            if (current === entry || current === null) { show("stopped", reason); }
            refreshDevices();
          });
          if (current === entry) { current = null; }
        }
      });
    }, function () {
      show("stopped", "network");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.watch") : null;
    if (button) {
      watch(button);
    }
  });
  stopButton.addEventListener("click", function () {
    stopCurrent(true);
    show("stopped", "stopped_by_viewer");
  });
})();
