/*
 * Kết Nối live view player: plays a camera relay of a media node into a <video> over WebRTC (WHEP-style).
 *
 * No dependencies, no build step, no inline script needed (works under a Content-Security-Policy with
 * script-src 'self'; the page must allow connect-src to the media node's origin).
 *
 *   const player = KetnoiWhep.play({
 *     video: document.querySelector("video"),
 *     nodeUrl: "https://media-1.example.vn",   // the node's public_url
 *     room: "cam-12",                           // the camera relay
 *     token: "...",                             // a view token from the controller (single use)
 *     iceServers: [{urls: ["turn:..."], username: "...", credential: "..."}],
 *     onStatus: (status) => { ... },            // {state, reason, detail}
 *   });
 *   player.stop();                              // leave: DELETE the session, close the connection
 *
 * Or declaratively: <video data-whep-node=... data-whep-room=... data-whep-token=... data-whep-ice='[...]'>
 * and KetnoiWhep.fromDataset(video, onStatus).
 *
 * Status: state "connecting" | "live" | "stopped". When stopped, `reason` is a code the page translates:
 *   left           the viewer left (stop() or the page was closed)
 *   refused        the node refused the token (detail: expired, replayed, wrong_room, ... or the HTTP status)
 *   unreachable    the node could not be reached
 *   failed         the connection failed or was lost (network; the node gone: after 4 s disconnected)
 *   ended          the node closed the session (access revoked, the viewing window closed, the relay ended):
 *                  seen at once from the DTLS transport closing; the page asks the controller why
 *   unsupported    this browser has no WebRTC
 * A status event is also dispatched on the video element: "whep-status" with the status as `detail`.
 *
 * Phones: the video is muted (autoplay is allowed only muted), plays inline (iOS would go full screen), and the
 * session is deleted when the page is hidden for good (pagehide).
 */
(function (global) {
  "use strict";

  var GATHER_TIMEOUT_MS = 2000;
  var CONNECT_TIMEOUT_MS = 15000;
  var DISCONNECTED_GRACE_MS = 4000;

  function preferH264(transceiver) {
    if (!transceiver.setCodecPreferences || !global.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) {
      return;
    }
    var caps = RTCRtpReceiver.getCapabilities("video");
    if (!caps) {
      return;
    }
    var h264 = caps.codecs.filter(function (c) { return c.mimeType.toLowerCase() === "video/h264"; });
    var rtx = caps.codecs.filter(function (c) { return c.mimeType.toLowerCase() === "video/rtx"; });
    if (h264.length) {
      try {
        transceiver.setCodecPreferences(h264.concat(rtx));
      } catch (e) {
        /* an older browser that refuses the list: the node answers with H.264 anyway */
      }
    }
  }

  function gathered(pc) {
    // The node takes one offer with every candidate (no trickle): wait for gathering, but not forever.
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") {
        resolve();
        return;
      }
      var timer = setTimeout(done, GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") {
          done();
        }
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function errorReason(response) {
    return response.text().then(function (text) {
      try {
        var body = JSON.parse(text);
        return body.reason || body.error || String(response.status);
      } catch (e) {
        return String(response.status);
      }
    }, function () { return String(response.status); });
  }

  function play(options) {
    var video = options.video;
    var onStatus = options.onStatus || function () {};
    var endpoint = options.nodeUrl.replace(/\/+$/, "") + "/whep/" + encodeURIComponent(options.room);
    var pc = null;
    var resource = null;
    var state = null;
    var connectTimer = null;
    var liveTimer = null;
    var disconnectTimer = null;

    function emit(next, reason, detail) {
      if (state === "stopped") {
        return;
      }
      state = next;
      var status = { state: next, reason: reason || "", detail: detail || "" };
      try {
        onStatus(status);
      } catch (e) {
        if (global.console) { console.error(e); }
      }
      if (video && video.dispatchEvent && typeof CustomEvent === "function") {
        video.dispatchEvent(new CustomEvent("whep-status", { detail: status }));
      }
    }

    function release(sendDelete) {
      clearTimeout(connectTimer);
      clearTimeout(disconnectTimer);
      clearInterval(liveTimer);
      global.removeEventListener("pagehide", onPageHide);
      if (sendDelete && resource) {
        // keepalive: the request goes out even when the page is being unloaded.
        fetch(resource, { method: "DELETE", keepalive: true, mode: "cors" }).catch(function () {});
      }
      resource = null;
      if (pc) {
        pc.close();
        pc = null;
      }
    }

    function stop(reason, detail, sendDelete) {
      if (state === "stopped") {
        return;
      }
      release(sendDelete !== false);
      emit("stopped", reason, detail);
    }

    function onPageHide(event) {
      if (!event.persisted) {
        stop("left");
      }
    }

    function watchFrames() {
      // "live" once frames are decoded (the <video> "playing" event alone fires before the first frame on
      // some phones); the status also goes back to failed if the connection goes.
      liveTimer = setInterval(function () {
        if (!pc || state !== "connecting") {
          clearInterval(liveTimer);
          return;
        }
        pc.getStats().then(function (report) {
          report.forEach(function (s) {
            if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0 && state === "connecting") {
              clearTimeout(connectTimer);
              emit("live");
            }
          });
        }).catch(function () {});
      }, 100);
    }

    if (!global.RTCPeerConnection || !global.fetch) {
      emit("stopped", "unsupported");
      return { stop: function () {} };
    }

    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("playsinline", "");
    video.setAttribute("muted", "");
    emit("connecting");

    pc = new RTCPeerConnection({ iceServers: options.iceServers || [] });
    var transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    preferH264(transceiver);
    pc.addEventListener("track", function (event) {
      var stream = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      video.srcObject = stream;
      var started = video.play();
      if (started && started.catch) {
        started.catch(function () { /* autoplay refused: the page's play button calls video.play() */ });
      }
      event.track.addEventListener("ended", function () { stop("ended", "", false); });
    });
    pc.addEventListener("connectionstatechange", function () {
      if (!pc) {
        return;
      }
      var s = pc.connectionState;
      if (s === "failed") {
        stop("failed", "connection failed", true);
      } else if (s === "closed") {
        stop("ended", "", false);
      }
    });
    pc.addEventListener("iceconnectionstatechange", function () {
      if (!pc) {
        return;
      }
      var s = pc.iceConnectionState;
      if (s === "disconnected") {
        // A short network hiccup heals by itself; a node that closed the session (or went away) does not, and
        // the browser would take about 30 s to call it failed.
        clearTimeout(disconnectTimer);
        disconnectTimer = setTimeout(function () { stop("failed", "connection lost", true); }, DISCONNECTED_GRACE_MS);
      } else if (s === "connected" || s === "completed") {
        clearTimeout(disconnectTimer);
      } else if (s === "failed") {
        stop("failed", "connection failed", true);
      }
    });
    function watchTransport(transport) {
      // The node closing the session (a revoked view, the end of the viewing window) closes DTLS at once.
      if (transport && transport.addEventListener) {
        transport.addEventListener("statechange", function () {
          if (transport.state === "closed") {
            stop("ended", "", false);
          } else if (transport.state === "failed") {
            stop("failed", "connection failed", true);
          }
        });
      }
    }
    global.addEventListener("pagehide", onPageHide);
    connectTimer = setTimeout(function () { stop("failed", "no picture within 15 s", true); }, CONNECT_TIMEOUT_MS);

    pc.createOffer()
      .then(function (offer) { return pc.setLocalDescription(offer); })
      .then(function () { return gathered(pc); })
      .then(function () {
        if (!pc) { throw new Error("stopped"); }
        return fetch(endpoint, {
          method: "POST",
          mode: "cors",
          headers: { "Content-Type": "application/sdp", "Authorization": "Bearer " + options.token },
          body: pc.localDescription.sdp,
        }).catch(function () {
          var err = new Error("unreachable");
          err.reason = "unreachable";
          throw err;
        });
      })
      .then(function (response) {
        if (response.status !== 201) {
          return errorReason(response).then(function (why) {
            var err = new Error(why);
            err.reason = "refused";
            err.detail = why;
            throw err;
          });
        }
        var location = response.headers.get("Location");
        if (location) {
          resource = new URL(location, endpoint).toString();
        }
        return response.text();
      })
      .then(function (answer) {
        if (!pc) { throw new Error("stopped"); }
        return pc.setRemoteDescription({ type: "answer", sdp: answer });
      })
      .then(function () {
        if (pc && transceiver.receiver) {
          watchTransport(transceiver.receiver.transport);
        }
      })
      .then(watchFrames)
      .catch(function (err) {
        if (state === "stopped") { return; }
        stop(err.reason || "failed", err.detail || String(err.message || err), !!resource);
      });

    return {
      stop: function () { stop("left"); },
      get state() { return state; },
      get peerConnection() { return pc; },
    };
  }

  function fromDataset(video, onStatus) {
    var data = video.dataset;
    var ice = [];
    if (data.whepIce) {
      try { ice = JSON.parse(data.whepIce); } catch (e) { ice = []; }
    }
    return play({
      video: video,
      nodeUrl: data.whepNode,
      room: data.whepRoom,
      token: data.whepToken,
      iceServers: ice,
      onStatus: onStatus,
    });
  }

  global.KetnoiWhep = { play: play, fromDataset: fromDataset };
})(typeof window !== "undefined" ? window : this);
