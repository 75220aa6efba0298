// The live serial console: xterm.js over the websocket /api/v1/vms/{name}/console. Binary
// frames are the guest's bytes (and the keys sent); text frames are the server's notices.
(function () {
  "use strict";
  var box = document.getElementById("terminal");
  var status = document.getElementById("console-status");
  if (!box || typeof Terminal === "undefined") { return; }
  var term = new Terminal({convertEol: false, cursorBlink: true, fontSize: 15, scrollback: 5000});
  term.open(box);
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + box.dataset.ws);
  ws.binaryType = "arraybuffer";
  var encoder = new TextEncoder();
  ws.onopen = function () { status.textContent = "connected"; term.focus(); };
  ws.onmessage = function (ev) {
    if (typeof ev.data === "string") {
      term.write("\r\n\x1b[33m[vpd] " + ev.data + "\x1b[0m\r\n");
      status.textContent = ev.data;
    } else {
      term.write(new Uint8Array(ev.data));
    }
  };
  ws.onclose = function (ev) {
    status.textContent = "closed" + (ev.reason ? ": " + ev.reason : "") + " (reload to reconnect)";
  };
  term.onData(function (data) {
    if (ws.readyState === WebSocket.OPEN) { ws.send(encoder.encode(data)); }
  });
})();
