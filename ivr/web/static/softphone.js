/* The agent page's browser phone (docs/webrtc.md): registers the logged-in agent's WebRTC endpoint to
 * Asterisk with JsSIP (jssip.min.js, loaded before this file) over the app's relay /api/me/phone/ws, rings on
 * an incoming call, and gives answer / mute / hold / hang up buttons.
 *
 * The page holds, anywhere:
 *   <section id="phone"> with #phone-state, buttons #phone-answer #phone-mute #phone-hold #phone-hangup and
 *   <audio id="phone-audio" autoplay>
 * This file finds them and starts itself once GET /api/me/phone answers (200: this login's agent has a
 * browser phone; 404: it has none, the section is hidden; anything else: the section says why). window.ivrPhone is the running phone
 * (tests read ivrPhone.stats()).
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);

  class Softphone {
    constructor(conf, ui) {
      this.conf = conf;        // {ws_url, sip_uri, username, password, display_name}
      this.ui = ui;            // {state(text, cls), buttons(which enabled), audio, ring(on)}
      this.session = null;
      this.muted = false;
      this.held = false;
      this.registered = false;
    }

    start() {
      const c = this.conf;
      const socket = new JsSIP.WebSocketInterface(c.ws_url);
      this.ua = new JsSIP.UA({
        sockets: [socket], uri: c.sip_uri, authorization_user: c.username, password: c.password,
        display_name: c.display_name || undefined, register: true, register_expires: 300,
        session_timers: false, user_agent: "ivr-agent-page", connection_recovery_min_interval: 1,
        connection_recovery_max_interval: 15,
      });
      this.ua.on("connecting", () => this.show());
      this.ua.on("registered", () => { this.registered = true; this.show(); });
      this.ua.on("unregistered", () => { this.registered = false; this.show(); });
      this.ua.on("registrationFailed", (e) => { this.registered = false; this.show("registration failed: " + (e.cause || "")); });
      this.ua.on("disconnected", () => { this.registered = false; this.show(); });
      this.ua.on("newRTCSession", (e) => this.incoming(e));
      this.ua.start();
      this.show();
    }

    stop() {
      if (this.session) try { this.session.terminate(); } catch (e) { /* already ended */ }
      if (this.ua) this.ua.stop();
    }

    incoming(e) {
      const s = e.session;
      if (e.originator !== "remote") return;
      if (this.session) { s.terminate({status_code: 486}); return; }   // one call at a time
      this.session = s;
      this.muted = false; this.held = false; this.wantHeld = false;
      s.on("peerconnection", (ev) => this.attach(ev.peerconnection));
      s.on("accepted", () => this.show());
      s.on("confirmed", () => this.show());
      s.on("hold", () => { this.show(); });
      s.on("unhold", () => { this.show(); });
      const done = (ev) => {
        if (this.session === s) { this.session = null; this.lastStats = null; }
        this.ui.ring(false);
        this.show(ev && ev.cause && ev.cause !== "Terminated" && ev.cause !== "Bye" ? "call ended: " + ev.cause : "");
      };
      s.on("ended", done);
      s.on("failed", done);
      this.ui.ring(true);
      this.show();
    }

    attach(pc) {
      this.pc = pc;
      pc.addEventListener("track", (ev) => { this.ui.audio.srcObject = ev.streams[0] || new MediaStream([ev.track]); });
    }

    answer() {
      const s = this.session;
      if (!s || !s.isInProgress() || s.direction !== "incoming") return;
      this.ui.ring(false);
      s.answer({mediaConstraints: {audio: true, video: false}, pcConfig: {iceServers: []}});
      if (s.connection) this.attach(s.connection);
      this.show();
    }

    hangup() { if (this.session) this.session.terminate(); }

    toggleMute() {
      const s = this.session;
      if (!s || !s.isEstablished()) return;
      if (this.muted) s.unmute({audio: true}); else s.mute({audio: true});
      this.muted = !this.muted;
      this.show();
    }

    toggleHold() {
      const s = this.session;
      if (!s || !s.isEstablished()) return;
      this.wantHeld = !this.wantHeld;
      this.applyHold(s, 20);
    }

    /* hold() / unhold() send a re-INVITE; while one is still pending JsSIP refuses the next (returns
     * false): try again shortly, so quick Hold / Resume clicks end in the state last asked for. */
    applyHold(s, tries) {
      if (s !== this.session || !s.isEstablished()) return;
      const held = s.isOnHold().local;
      if (held === this.wantHeld) { this.held = held; this.show(); return; }
      const ok = this.wantHeld ? s.hold() : s.unhold();
      if (ok) { this.held = this.wantHeld; this.show(); return; }
      if (tries > 0) setTimeout(() => this.applyHold(s, tries - 1), 250);
    }

    /* {state, sent, received, energy}: audio RTP packets of the current call's peer connection and the
     * energy of what was received (getStats). */
    async stats() {
      const out = {state: this.stateText(), sent: 0, received: 0, bytesSent: 0, bytesReceived: 0, energy: 0};
      const pc = this.session && this.session.connection;
      if (!pc) return out;
      (await pc.getStats()).forEach((r) => {
        if (r.kind !== "audio" && r.mediaType !== "audio") return;
        if (r.type === "outbound-rtp") { out.sent += r.packetsSent || 0; out.bytesSent += r.bytesSent || 0; }
        if (r.type === "inbound-rtp") {
          out.received += r.packetsReceived || 0; out.bytesReceived += r.bytesReceived || 0;
          out.energy += r.totalAudioEnergy || 0;      // sound actually heard, not only packets
        }
      });
      return out;
    }

    stateText() {
      const s = this.session;
      if (s && s.isEstablished()) return this.held ? "on hold" : (this.muted ? "in call (muted)" : "in call");
      if (s && s.isInProgress()) return s.direction === "incoming" && !s.connection ? "ringing" : "connecting call";
      if (this.registered) return "ready";
      return this.ua && this.ua.isConnected() ? "registering" : "connecting";
    }

    show(note) {
      const s = this.session, st = this.stateText();
      const inCall = !!(s && s.isEstablished());
      this.ui.state(st + (note ? " — " + note : ""), st.replace(/[^a-z]+/g, "-"));
      this.ui.buttons({answer: st === "ringing", hangup: !!s, mute: inCall, hold: inCall},
                      {mute: this.muted ? "Unmute" : "Mute", hold: this.held ? "Resume" : "Hold"});
    }
  }

  /* A short two-tone ring from WebAudio while an incoming call waits (no sound file to load). */
  function ringer() {
    let ctx = null, timer = null;
    const beep = () => {
      try {
        ctx = ctx || new AudioContext();
        for (const [f, t] of [[440, 0], [480, 0]]) {
          const o = ctx.createOscillator(), g = ctx.createGain();
          o.frequency.value = f; g.gain.value = 0.05;
          o.connect(g).connect(ctx.destination);
          o.start(ctx.currentTime + t); o.stop(ctx.currentTime + t + 1.2);
        }
      } catch (e) { /* no audio output: the state text still says ringing */ }
    };
    return (on) => {
      if (on && !timer) { beep(); timer = setInterval(beep, 3000); }
      if (!on && timer) { clearInterval(timer); timer = null; }
    };
  }

  function ui() {
    const b = {answer: $("phone-answer"), mute: $("phone-mute"), hold: $("phone-hold"), hangup: $("phone-hangup")};
    return {
      audio: $("phone-audio"),
      ring: ringer(),
      state(text, cls) { $("phone-state").textContent = text; $("phone-state").className = cls; },
      buttons(enabled, labels) {
        for (const k of Object.keys(b)) if (b[k]) b[k].disabled = !enabled[k];
        for (const k of Object.keys(labels)) if (b[k]) b[k].textContent = labels[k];
      },
      bind(phone) {
        b.answer.onclick = () => phone.answer();
        b.hangup.onclick = () => phone.hangup();
        b.mute.onclick = () => phone.toggleMute();
        b.hold.onclick = () => phone.toggleHold();
      },
    };
  }

  async function boot() {
    if (!$("phone")) return;
    const u = ui();
    u.buttons({answer: false, mute: false, hold: false, hangup: false}, {});
    let conf;
    try {
      const r = await fetch("/api/me/phone", {credentials: "same-origin", cache: "no-store"});
      const j = await r.json();
      if (r.status === 404) { $("phone").hidden = true; return; }     // this agent's phone is a SIP phone
      if (!r.ok) { u.state("no browser phone: " + (j.message || r.status), "off"); return; }
      conf = j;
    } catch (e) { u.state("no browser phone: " + e, "off"); return; }
    if (typeof JsSIP === "undefined" || !window.RTCPeerConnection || !navigator.mediaDevices) {
      u.state("this browser cannot run the phone (WebRTC needs https or localhost)", "off");
      return;
    }
    const loc = location;
    if (conf.ws_path) conf.ws_url = (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + conf.ws_path;
    const phone = new Softphone(conf, u);
    u.bind(phone);
    window.ivrPhone = phone;
    window.addEventListener("pagehide", () => phone.stop());
    phone.start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
