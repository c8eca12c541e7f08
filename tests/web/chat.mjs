// One chat turn with strophe.js under Node.js, for tests/py/test_web.py: logs in through the
// given BOSH (https://…) or WebSocket (wss://…) service URL, sends presence and one message,
// waits for a message with the expected body, then logs out.
//
//   node chat.mjs SERVICE JID PASSWORD TO BODY EXPECTED [TIMEOUT_SECS]
//
// Prints one JSON object per line on stdout ({"event": "connected"|"sent"|"received"|"done"|
// "error", …}) and exits 1 on failure. TLS is verified by Node's default rules: trust the
// server's certificate with NODE_EXTRA_CA_CERTS and use the name it was made for in SERVICE.
import { Strophe, $msg, $pres } from 'strophe.js';
import XHR from 'xhr2';

// Strophe logs at DEBUG to stdout by default; stdout is for the JSON lines.
Strophe.setLogLevel(Strophe.LogLevel.WARN);

// Node has no XMLHttpRequest, which strophe's BOSH transport uses. xhr2 supplies the HTTP part
// but not `responseXML`, which strophe reads the answer from: parse `responseText` as a
// browser would, with the DOMParser strophe's Node build installs.
globalThis.XMLHttpRequest = class extends XHR {
    get responseXML() {
        return this.responseText ? new DOMParser().parseFromString(this.responseText, 'text/xml') : null;
    }
};

const [service, jid, password, to, body, expected, timeoutSecs = '20'] = process.argv.slice(2);
if (!expected) {
    console.error('usage: node chat.mjs SERVICE JID PASSWORD TO BODY EXPECTED [TIMEOUT_SECS]');
    process.exit(2);
}

const say = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));
const statusName = (status) => Object.keys(Strophe.Status).find((k) => Strophe.Status[k] === status);

function fail(error) {
    say('error', { error });
    process.exit(1);
}

const timer = setTimeout(() => fail(`no message "${expected}" within ${timeoutSecs} s`), timeoutSecs * 1000);
const conn = new Strophe.Connection(service);
let loggedIn = false;
let done = false;

conn.addHandler((msg) => {
    const text = msg.getElementsByTagName('body')[0]?.textContent;
    if (text === undefined) {
        return true;
    }
    say('received', { from: msg.getAttribute('from'), body: text });
    if (text === expected) {
        done = true;
        clearTimeout(timer);
        conn.disconnect('done');
    }
    return true;
}, null, 'message');

conn.connect(jid, password, (status, condition) => {
    switch (status) {
        case Strophe.Status.CONNECTED:
            loggedIn = true;
            say('connected', { jid: conn.jid, transport: conn._proto.constructor.name });
            conn.send($pres());
            conn.send($msg({ to, type: 'chat' }).c('body').t(body));
            say('sent', { to, body });
            break;
        case Strophe.Status.DISCONNECTED:
            if (!done) {
                fail(`disconnected ${loggedIn ? 'before the expected message' : 'before logging in'} (${condition ?? 'no condition'})`);
            }
            say('done');
            process.exit(0);
            break;
        case Strophe.Status.CONNFAIL:
        case Strophe.Status.AUTHFAIL:
        case Strophe.Status.ERROR:
            fail(`${statusName(status)}: ${condition ?? 'no condition'}`);
            break;
        default:
            break;
    }
});
