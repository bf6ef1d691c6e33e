// Per click: open the proxy's console page in a new window (in the click handler, so no pop-up blocker
// objects), fetch a fresh ticket, and post {connectionTicket, password} to the window once the page
// says it is ready. The console page accepts the message only from its CONSOLE_PARENT_ORIGINS.
const READY = 'wsproxy-console-ready';
const pending = [];  // {origin, win, data}: console windows waiting for their ticket

function fetchTicket(vm) {
    return fetch(`ticket/${encodeURIComponent(vm)}`, { method: 'POST' })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`the ticket request failed: HTTP ${r.status}`))));
}

function say(row, ...parts) {
    const line = row.querySelector('.message');
    line.replaceChildren(...parts);
    line.hidden = parts.length === 0;
}

function request(row, win) {
    const entry = { origin: new URL(row.dataset.console).origin, win, data: fetchTicket(row.dataset.vm) };
    entry.data.catch((error) => say(row, error.message));
    pending.push(entry);
}

function openConsole(row) {
    const win = window.open(row.dataset.console);
    if (win) {
        say(row);
        request(row, win);
        return;
    }
    // Pop-up blocked: say so and offer a link (its window keeps its opener through rel="opener").
    const link = Object.assign(document.createElement('a'), { href: row.dataset.console, target: '_blank',
                                                              rel: 'opener', textContent: 'open the console' });
    link.addEventListener('click', () => request(row, null), { once: true });
    say(row, 'The browser blocked the console window. Allow pop-ups for this page, or ', link, '.');
}

window.addEventListener('message', (event) => {
    if (!event.data || event.data.type !== READY) {
        return;
    }
    const entry = pending.find((e) => e.win === event.source && e.origin === event.origin)
        || pending.find((e) => e.win === null && e.origin === event.origin);
    if (!entry) {
        return;
    }
    pending.splice(pending.indexOf(entry), 1);
    entry.data.then(({ connectionTicket, password }) => {
        event.source.postMessage({ connectionTicket, password }, entry.origin);
    });
});

for (const row of document.querySelectorAll('tr[data-vm]')) {
    row.querySelector('button').addEventListener('click', () => openConsole(row));
}
