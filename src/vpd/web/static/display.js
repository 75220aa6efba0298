// The graphical console: noVNC 1.7 (ES modules, served from the package) over the websocket
// /api/v1/vms/{name}/vnc, which vpd bridges to the VM's VNC server. The bridge already
// authenticated to the server and enforces view-only for viewers; viewOnly here only stops
// the page from sending what the server would drop.
import RFB from "/static/vendor/@novnc/novnc/core/rfb.js";

const screen = document.getElementById("screen");
const status = document.getElementById("display-status");
const cad = document.getElementById("display-cad");
if (screen) {
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const rfb = new RFB(screen, proto + location.host + screen.dataset.ws, {shared: true});
  rfb.viewOnly = screen.dataset.viewOnly === "true";
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  window.vpdDisplay = rfb;  // for the browser tests and the curious
  rfb.addEventListener("connect", () => {
    status.textContent = "connected";
    screen.dataset.state = "connected";
    if (cad) { cad.disabled = false; }
    if (!rfb.viewOnly) { rfb.focus(); }
  });
  rfb.addEventListener("desktopname", (ev) => { screen.dataset.desktop = ev.detail.name; });
  rfb.addEventListener("disconnect", (ev) => {
    status.textContent = ev.detail.clean ? "disconnected (reload to reconnect)" : "connection lost (reload to reconnect)";
    screen.dataset.state = "disconnected";
    if (cad) { cad.disabled = true; }
  });
  if (cad) { cad.addEventListener("click", () => rfb.sendCtrlAltDel()); }
}
