// The noVNC console page: like oVirt's novnc-main.jsp, it receives {connectionTicket, password}
// by postMessage (only from the allowed parent origins) and opens wss://<this host>/<ticket>.
import RFB from './novnc/core/rfb.js';

const READY = 'wsproxy-console-ready';
const meta = document.querySelector('meta[name="wsproxy-parent-origins"]');
const configured = JSON.parse(meta ? meta.content : '[]');
const accepted = configured.length ? configured : [location.origin];
const statusLine = document.getElementById('status');
let rfb = null;

function setStatus(text, state) {
    statusLine.textContent = text;
    document.body.dataset.state = state;
}

function open(ticket, password) {
    const params = new URLSearchParams(location.search);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    rfb = new RFB(document.getElementById('screen'), `${scheme}://${location.host}/${ticket}`, {
        credentials: { password },
        wsProtocols: ['binary'],
    });
    rfb.viewOnly = params.get('view_only') === 'true';
    rfb.scaleViewport = params.get('scale') === 'true';
    rfb.addEventListener('connect', () => setStatus('Connected', 'connected'));
    rfb.addEventListener('disconnect', (e) => setStatus(e.detail.clean ? 'Disconnected' : 'Connection lost',
                                                          'disconnected'));
    rfb.addEventListener('credentialsrequired', () => setStatus('The VNC password was refused', 'error'));
    rfb.addEventListener('securityfailure', (e) => setStatus(`Security failure: ${e.detail.reason || ''}`, 'error'));
    rfb.addEventListener('desktopname', (e) => { document.title = `${e.detail.name} - Console`; });
    setStatus('Connecting', 'connecting');
}

window.addEventListener('message', (event) => {
    if (!accepted.includes(event.origin) || rfb !== null) {
        return;
    }
    const data = event.data || {};
    if (data.type === READY) {
        return;
    }
    if (typeof data.connectionTicket !== 'string' || typeof data.password !== 'string') {
        setStatus('Incorrect connection data', 'error');
        return;
    }
    open(data.connectionTicket, data.password);
});

if (window.opener) {
    for (const origin of accepted) {
        window.opener.postMessage({ type: READY }, origin);
    }
}
