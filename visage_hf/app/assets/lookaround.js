// visage-hf look-around player: first-order ambisonics (AmbiX W, Y, Z, X; SN3D) -> binaural in WebAudio,
// with the listener's head following a drag, sliders or the camera. The graph applies the spherical-harmonic
// binaural filters exported by visage_hf/app/player.py (the same as visage_hf/audio/binaural.py):
//   FOA buffer -> splitter(4) -> 3x3 rotation of (X, Y, Z) as gains -> per channel a ConvolverNode with a
//   two-channel impulse response (left, right filter of that channel) -> sum -> stereo out.
// Angles in degrees, azimuth counter-clockwise from the front (+ = left), elevation up. The head facing
// (yaw, pitch) hears the field rotated by R = Ry(pitch) Rz(-yaw) (visage_hf.audio.foa.rotation_matrix).
// Test hook: window.visageLookAround.measure(yaw, pitch) -> Promise [rmsLeft, rmsRight] (OfflineAudioContext).
(() => {
  "use strict";
  if (window.visageLookAround) return;
  const DEG = Math.PI / 180;
  const XYZ = [3, 1, 2]; // ACN channel of x (front), y (left), z (up)
  const SYNC_SEEK_SECONDS = 0.25; // video further off than this jumps; closer, its rate is nudged

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const wrap = (deg) => ((((deg + 180) % 360) + 360) % 360) - 180;
  const signed = (deg) => `${deg >= 0 ? "+" : "−"}${Math.abs(Math.round(deg))}°`;
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

  function fieldRotation(yaw, pitch) {
    // Ry(pitch) · Rz(-yaw), acting on (x, y, z)
    const ca = Math.cos(-yaw * DEG), sa = Math.sin(-yaw * DEG);
    const cp = Math.cos(pitch * DEG), sp = Math.sin(pitch * DEG);
    return [[cp * ca, -cp * sa, sp], [sa, ca, 0], [-sp * ca, sp * sa, cp]];
  }

  function discrete(node, channels) {
    node.channelCount = channels;
    node.channelCountMode = "explicit";
    node.channelInterpretation = "discrete";
    return node;
  }

  // The renderer; works in an AudioContext (live) and an OfflineAudioContext (measure / render).
  function buildGraph(ctx, filters) {
    if (filters.sampleRate !== ctx.sampleRate) throw new Error(`filters at ${filters.sampleRate} Hz, context at ${ctx.sampleRate} Hz`);
    const input = discrete(ctx.createGain(), 4);
    const splitter = discrete(ctx.createChannelSplitter(4), 4);
    const output = discrete(ctx.createGain(), 2);
    input.connect(splitter);
    const feeds = [];
    for (let c = 0; c < 4; c++) {
      const feed = discrete(ctx.createGain(), 1);
      const convolver = discrete(ctx.createConvolver(), 1);
      convolver.normalize = false; // before the buffer is set: the filters carry their own level
      const taps = filters.left[c].length;
      const ir = ctx.createBuffer(2, taps, ctx.sampleRate);
      ir.copyToChannel(Float32Array.from(filters.left[c]), 0);
      ir.copyToChannel(Float32Array.from(filters.right[c]), 1);
      convolver.buffer = ir;
      feed.connect(convolver).connect(output);
      feeds.push(feed);
    }
    splitter.connect(feeds[0], 0); // W is unchanged by a rotation
    const gains = XYZ.map((to) => XYZ.map((from) => {
      const gain = discrete(ctx.createGain(), 1);
      splitter.connect(gain, from);
      gain.connect(feeds[to]);
      return gain;
    }));
    function setHead(yaw, pitch, smooth) {
      const matrix = fieldRotation(yaw, pitch);
      gains.forEach((row, i) => row.forEach((gain, j) => {
        if (smooth) gain.gain.setTargetAtTime(matrix[i][j], ctx.currentTime, 0.015);
        else gain.gain.setValueAtTime(matrix[i][j], ctx.currentTime);
      }));
    }
    return { input, output, setHead };
  }

  async function renderOffline(buffer, filters, yaw, pitch) {
    const ctx = new OfflineAudioContext({ numberOfChannels: 2, length: buffer.length, sampleRate: buffer.sampleRate });
    discrete(ctx.destination, 2);
    const graph = buildGraph(ctx, filters);
    graph.setHead(yaw, pitch, false);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(graph.input);
    graph.output.connect(ctx.destination);
    source.start(0);
    return ctx.startRendering();
  }

  const rms = (x) => { let s = 0; for (let i = 0; i < x.length; i++) s += x[i] * x[i]; return Math.sqrt(s / Math.max(1, x.length)); };

  const MARKUP = `
    <div class="la-stage"><video class="la-video" muted playsinline preload="auto"></video><canvas class="la-gaze"></canvas></div>
    <div class="la-row">
      <button type="button" class="la-play" disabled>▶ Play</button>
      <input type="range" class="la-seek" min="0" max="1" step="0.01" value="0" aria-label="position">
      <span class="la-time">0:00 / 0:00</span>
    </div>
    <div class="la-row">
      <canvas class="la-compass" width="84" height="84" title="seen from above: blue = camera, orange = you"></canvas>
      <div class="la-sliders">
        <label>Head yaw <input type="range" class="la-yaw" min="-180" max="180" step="1" value="0"></label>
        <label>Head pitch <input type="range" class="la-pitch" min="-90" max="90" step="1" value="0"></label>
        <label class="la-follow-label"><input type="checkbox" class="la-follow" checked> Follow the camera</label>
      </div>
      <span class="la-readout">facing az +0°, el +0°</span>
    </div>
    <p class="la-message"></p>`;

  class Player {
    constructor(root) {
      this.root = root;
      root.innerHTML = MARKUP;
      const $ = (s) => root.querySelector(s);
      Object.assign(this, {
        video: $(".la-video"), gaze: $(".la-gaze"), playButton: $(".la-play"), seekBar: $(".la-seek"),
        time: $(".la-time"), compass: $(".la-compass"), yawSlider: $(".la-yaw"), pitchSlider: $(".la-pitch"),
        followBox: $(".la-follow"), readout: $(".la-readout"), message: $(".la-message"),
      });
      this.yaw = 0; this.pitch = 0; this.follow = true;
      this.buffer = null; this.config = null; this.ctx = null; this.graph = null; this.source = null;
      this.playing = false; this.offset = 0; this.startedAt = 0; this.error = null; this.loading = null;
      this.bindControls();
      this.bindDrag();
      this.draw();
    }

    bindControls() {
      this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
      this.seekBar.addEventListener("input", () => this.seek(Number(this.seekBar.value)));
      const fromSliders = () => this.setHead(Number(this.yawSlider.value), Number(this.pitchSlider.value), true);
      this.yawSlider.addEventListener("input", fromSliders);
      this.pitchSlider.addEventListener("input", fromSliders);
      this.followBox.addEventListener("change", () => { this.follow = this.followBox.checked; this.followCamera(); });
      this.video.addEventListener("loadedmetadata", () => this.draw());
      window.addEventListener("resize", () => this.draw());
    }

    bindDrag() {
      const stage = this.root.querySelector(".la-stage");
      let start = null;
      stage.addEventListener("pointerdown", (e) => {
        start = { x: e.clientX, y: e.clientY, yaw: this.yaw, pitch: this.pitch };
        stage.setPointerCapture?.(e.pointerId);
        e.preventDefault();
      });
      stage.addEventListener("pointermove", (e) => {
        if (!start) return;
        const box = stage.getBoundingClientRect();
        // Grab the world: dragging the picture to the right brings what was on the left to the front.
        const yaw = start.yaw + ((e.clientX - start.x) / box.width) * 180;
        const pitch = start.pitch + ((e.clientY - start.y) / box.height) * 90;
        this.setHead(yaw, pitch, true);
      });
      const end = () => { start = null; };
      stage.addEventListener("pointerup", end);
      stage.addEventListener("pointercancel", end);
    }

    setHead(yaw, pitch, byUser) {
      if (byUser && this.follow) { this.follow = false; this.followBox.checked = false; }
      this.yaw = wrap(yaw);
      this.pitch = clamp(pitch, -90, 90);
      this.yawSlider.value = String(Math.round(this.yaw));
      this.pitchSlider.value = String(Math.round(this.pitch));
      if (this.graph) this.graph.setHead(this.yaw, this.pitch, true);
      this.draw();
    }

    cameraAt(seconds) {
      const path = this.config && this.config.cameraPath; // [[seconds, azimuth, elevation], ...] when given
      if (path && path.length) {
        let k = 0;
        while (k + 1 < path.length && path[k + 1][0] <= seconds) k++;
        return [path[k][1], path[k][2]];
      }
      return this.config ? this.config.camera : [0, 0];
    }

    followCamera() {
      if (!this.follow || !this.config) return;
      const [azimuth, elevation] = this.cameraAt(this.position());
      if (Math.abs(wrap(azimuth - this.yaw)) > 0.01 || Math.abs(elevation - this.pitch) > 0.01) this.setHead(azimuth, elevation, false);
    }

    async load(foaUrl, videoUrl, config) {
      this.pause();
      this.error = null; this.buffer = null; this.config = config; this.message.textContent = "";
      this.playButton.disabled = true;
      this.offset = 0;
      this.loading = (async () => {
        try {
          const bytes = await (await fetch(foaUrl)).arrayBuffer();
          const decoder = new OfflineAudioContext(4, 1, config.filters.sampleRate);
          const buffer = await decoder.decodeAudioData(bytes);
          if (buffer.numberOfChannels !== 4) throw new Error(`the audio has ${buffer.numberOfChannels} channels, expected 4`);
          this.buffer = buffer;
          if (videoUrl) { this.video.src = videoUrl; this.video.load(); }
          this.seekBar.max = String(buffer.duration);
          this.playButton.disabled = false;
          this.followCamera();
          if (!this.follow) this.setHead(this.yaw, this.pitch, false);
          this.draw();
        } catch (error) {
          this.error = String(error && error.message ? error.message : error);
          this.message.textContent = `The player could not load this audio: ${this.error}`;
        }
      })();
      return this.loading;
    }

    ensureContext() {
      const rate = this.config.filters.sampleRate;
      if (!this.ctx || this.ctx.sampleRate !== rate) {
        if (this.ctx) this.ctx.close();
        this.ctx = new AudioContext({ sampleRate: rate, latencyHint: "playback" });
        discrete(this.ctx.destination, 2);
        this.graph = buildGraph(this.ctx, this.config.filters);
        this.graph.output.connect(this.ctx.destination);
      }
      this.graph.setHead(this.yaw, this.pitch, false);
    }

    position() {
      if (!this.playing || !this.ctx) return this.offset;
      return this.offset + (this.ctx.currentTime - this.startedAt);
    }

    async play() {
      if (!this.buffer || this.playing) return;
      this.ensureContext();
      await this.ctx.resume();
      if (this.offset >= this.buffer.duration - 0.01) this.offset = 0;
      const source = this.ctx.createBufferSource();
      source.buffer = this.buffer;
      source.connect(this.graph.input);
      this.startedAt = this.ctx.currentTime;
      source.start(this.startedAt, this.offset);
      source.onended = () => { if (this.source === source) this.finish(); };
      this.source = source;
      this.playing = true;
      this.video.currentTime = this.offset;
      this.video.playbackRate = 1;
      this.video.play().catch(() => {});
      this.playButton.textContent = "❚❚ Pause";
      this.timer = setInterval(() => this.tick(), 100);
    }

    stopSource() {
      if (this.source) { const s = this.source; this.source = null; try { s.stop(); } catch (e) { /* already stopped */ } }
      clearInterval(this.timer);
    }

    pause() {
      if (!this.playing) return;
      this.offset = this.position();
      this.stopSource();
      this.playing = false;
      this.video.pause();
      this.video.currentTime = this.offset;
      this.playButton.textContent = "▶ Play";
      this.draw();
    }

    finish() {
      this.pause();
      this.offset = this.buffer ? this.buffer.duration : 0;
      this.draw();
    }

    seek(seconds) {
      const wasPlaying = this.playing;
      if (wasPlaying) { this.offset = this.position(); this.stopSource(); this.playing = false; }
      this.offset = clamp(seconds, 0, this.buffer ? this.buffer.duration : 0);
      this.video.currentTime = this.offset;
      if (wasPlaying) this.play();
      else this.draw();
    }

    tick() {
      // The audio clock leads; the video follows it (nudged rate, or a jump when far off).
      const target = this.position();
      const drift = this.video.currentTime - target;
      if (Math.abs(drift) > SYNC_SEEK_SECONDS) this.video.currentTime = target;
      else this.video.playbackRate = 1 - clamp(2 * drift, -0.2, 0.2);
      this.followCamera();
      this.draw();
    }

    draw() {
      const duration = this.buffer ? this.buffer.duration : 0;
      const now = this.position();
      this.seekBar.value = String(now);
      this.time.textContent = `${clock(now)} / ${clock(duration)}`;
      this.readout.textContent = `facing az ${signed(this.yaw)}, el ${signed(this.pitch)}`;
      this.drawCompass();
      this.drawGaze();
    }

    drawCompass() {
      const g = this.compass.getContext("2d"), size = this.compass.width, c = size / 2, r = size / 2 - 8;
      g.clearRect(0, 0, size, size);
      g.strokeStyle = "#888"; g.lineWidth = 1; g.beginPath(); g.arc(c, c, r, 0, 2 * Math.PI); g.stroke();
      g.fillStyle = "#888"; g.font = "9px sans-serif"; g.textAlign = "center";
      g.fillText("front", c, 8); g.fillText("L", 4, c + 3); g.fillText("R", size - 4, c + 3);
      const ray = (azimuth, color, width) => { // seen from above, front up, left to the left
        g.strokeStyle = color; g.lineWidth = width; g.beginPath(); g.moveTo(c, c);
        g.lineTo(c - r * Math.sin(azimuth * DEG), c - r * Math.cos(azimuth * DEG)); g.stroke();
      };
      if (this.config) ray(this.cameraAt(this.position())[0], "#3b82f6", 2);
      ray(this.yaw, "#f97316", 3);
    }

    drawGaze() {
      const canvas = this.gaze, box = this.video.getBoundingClientRect();
      canvas.width = Math.max(1, Math.round(box.width)); canvas.height = Math.max(1, Math.round(box.height));
      const g = canvas.getContext("2d");
      g.clearRect(0, 0, canvas.width, canvas.height);
      const from = this.config ? this.config.sphereFrom : null;
      if (from === null || from === undefined || !this.video.videoWidth) return;
      // The picture inside the element (object-fit: contain), then the whole-sphere part of it.
      const scale = Math.min(canvas.width / this.video.videoWidth, canvas.height / this.video.videoHeight);
      const w = this.video.videoWidth * scale, h = this.video.videoHeight * scale;
      const left = (canvas.width - w) / 2 + from * w, top = (canvas.height - h) / 2, width = w * (1 - from);
      const x = left + ((180 - this.yaw) / 360) * width, y = top + ((90 - this.pitch) / 180) * h;
      g.strokeStyle = "#f97316"; g.lineWidth = 2;
      g.beginPath(); g.arc(x, y, 9, 0, 2 * Math.PI); g.moveTo(x - 14, y); g.lineTo(x + 14, y); g.moveTo(x, y - 14); g.lineTo(x, y + 14); g.stroke();
    }

    async ready() {
      if (this.loading) await this.loading;
      if (this.error) throw new Error(this.error);
      if (!this.buffer) throw new Error("no audio is loaded");
    }

    async render(yaw, pitch) {
      await this.ready();
      return renderOffline(this.buffer, this.config.filters, yaw, pitch);
    }

    state() {
      return {
        loaded: !!this.buffer, error: this.error, title: this.config ? this.config.title : null,
        yaw: this.yaw, pitch: this.pitch, follow: this.follow, playing: this.playing,
        position: this.position(), contextTime: this.ctx ? this.ctx.currentTime : null,
        contextState: this.ctx ? this.ctx.state : null, videoTime: this.video.currentTime,
        sampleRate: this.buffer ? this.buffer.sampleRate : null, duration: this.buffer ? this.buffer.duration : null,
      };
    }
  }

  const urlOf = (value) => (!value ? null : typeof value === "string" ? value : value.url || (value.video && value.video.url) || null);

  const api = {
    players: {},
    current: null,
    player(name) {
      const root = document.getElementById(`lookaround-${name}`) || document.createElement("div");
      let player = this.players[name];
      if (!player || player.root !== root) {
        if (player) player.pause();
        player = this.players[name] = new Player(root);
      }
      return player;
    },
    // Called by the page after a generation / an upload: foa and video are Gradio file values or URLs.
    load(name, foa, video, config) {
      const url = urlOf(foa);
      if (!url || !config) return Promise.resolve();
      const player = this.player(name);
      this.current = player;
      return player.load(url, urlOf(video), config);
    },
    async measure(yaw, pitch) {
      const out = await this.current.render(yaw, pitch);
      return [rms(out.getChannelData(0)), rms(out.getChannelData(1))];
    },
    async render(yaw, pitch, samples) {
      const out = await this.current.render(yaw, pitch);
      const n = Math.min(samples || out.length, out.length);
      return [Array.from(out.getChannelData(0).subarray(0, n)), Array.from(out.getChannelData(1).subarray(0, n))];
    },
    state() { return this.current ? this.current.state() : { loaded: false }; },
    setHead(yaw, pitch) { this.current.setHead(yaw, pitch, true); return this.current.state(); },
    fieldRotation,
  };
  window.visageLookAround = api;
})();
