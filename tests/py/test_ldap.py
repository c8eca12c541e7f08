"""Logins against a real OpenLDAP (Debian's slapd, started here with a small directory): users
bind with their directory password (search-then-bind with a service account, or a DN template),
a group filter decides who may log in, many logins at once share a few pooled connections that
outlive a directory restart, the directory going down fails new logins with
temporary-auth-failure while sessions stay up, and directory groups become shared roster
groups; vCards carry the directory's name, mail, phone and photo."""

import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import Server, free_ports, terminate
from test_slixmpp import TIMEOUT, Client, run

LDAP_HOST = "127.0.0.60"
HEARTH_HOST = "127.0.0.61"
BASE = "dc=example,dc=org"
SERVICE_DN = f"cn=hearth,{BASE}"
SERVICE_PW = "service-secret"
# The smallest valid JPEG is not needed: the directory stores bytes, the vCard carries them.
PHOTO = bytes(range(256)) * 4
POOL_SIZE = 4

pytestmark = pytest.mark.skipif(shutil.which("slapd") is None or not os.path.exists("/usr/sbin/slapd"),
                                reason="needs Debian's slapd and ldap-utils (tests/py/install-deps.sh installs them)")

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
database mdb
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw admin-secret
directory {dir}/db
TLSCACertificateFile {dir}/ca.crt
TLSCertificateFile {dir}/server.crt
TLSCertificateKeyFile {dir}/server.key
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by dn.exact="{service}" read by self read by * none
"""


def person(uid, name, password, extra=""):
    return (f"dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
            f"sn: {name.split()[-1]}\nuserPassword: {password}\n{extra}\n")


def group(name, *uids):
    members = "".join(f"member: uid={u},ou=people,{BASE}\n" for u in uids)
    return f"dn: cn={name},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {name}\n{members}\n"


DIRECTORY = (
    f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
    f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
    f"cn: hearth\nuserPassword: {SERVICE_PW}\n\n"
    f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
    + person("alice", "Alice Liddell", "alice-pw",
             "mail: alice@example.org\ntelephoneNumber: +49 30 1234\n"
             f"jpegPhoto:: {base64.b64encode(PHOTO).decode()}\n")
    + person("bob", "Bob Builder", "bob-pw")
    + person("carol", "Carol Danvers", "carol-pw")
    + person("mallory", "Mallory Outsider", "mallory-pw")
    # Who may use chat at all; members of Sales see each other in their rosters.
    + group("xmpp", "alice", "bob", "carol")
    + group("Sales", "alice", "bob")
)


def company_ca(workdir):
    """A private CA and a certificate from it for the directory's address."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=workdir)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Example Company CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={LDAP_HOST}",
            "-keyout", "server.key", "-out", "server.csr")
    with open(f"{workdir}/san.ext", "w") as f:
        f.write(f"subjectAltName=IP:{LDAP_HOST}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


class Slapd:
    """slapd with plain LDAP (StartTLS possible) on `url` and LDAPS on `ldaps_url`."""

    def __init__(self, workdir):
        self.dir = workdir
        self.port, ldaps_port = free_ports(2, LDAP_HOST)
        self.url = f"ldap://{LDAP_HOST}:{self.port}"
        self.ldaps_url = f"ldaps://{LDAP_HOST}:{ldaps_port}"
        os.makedirs(f"{workdir}/db", exist_ok=True)
        company_ca(workdir)
        self.ca = f"{workdir}/ca.crt"
        with open(f"{workdir}/slapd.conf", "w") as f:
            f.write(SLAPD_CONF.format(dir=workdir, base=BASE, service=SERVICE_DN))
        self.proc = None

    def start(self):
        # -d 0: stay in the foreground (so the test owns the process), log nothing.
        self.proc = subprocess.Popen(["slapd", "-d", "0", "-f", f"{self.dir}/slapd.conf", "-h",
                                      f"{self.url}/ {self.ldaps_url}/"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while subprocess.run(["ldapsearch", "-x", "-H", self.url, "-b", "", "-s", "base"],
                             capture_output=True).returncode != 0:
            assert self.proc.poll() is None, "slapd exited"
            assert time.monotonic() < deadline, "slapd did not answer within 15 s"
            time.sleep(0.1)

    def change(self, ldif, tool="ldapmodify"):
        """Applies `ldif` as the directory's administrator (`ldapadd` for new entries)."""
        r = subprocess.run([tool, "-x", "-H", self.url, "-D", f"cn=admin,{BASE}", "-w", "admin-secret"],
                           input=ldif, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def stop(self):
        terminate(self.proc, 10)


LDAP_SECTION = """
[auth.ldap]
url = "{url}"
bind_dn = "{service}"
bind_password = "{password}"
base_dn = "ou=people,{base}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{user}})(memberOf=cn=xmpp,ou=groups,{base}))"
timeout_secs = 2
pool_size = {pool_size}
[auth.ldap.groups]
base_dn = "ou=groups,{base}"
filter = "(&(objectClass=groupOfNames)(!(cn=xmpp)))"
[modules.groups]
refresh_secs = 1
"""


@pytest.fixture(scope="module")
def ldap(hearth_server):
    """(slapd, hearth checking passwords with it)."""
    workdir = tempfile.mkdtemp(prefix="hearth-ldap-")
    slapd = Slapd(f"{workdir}/slapd")
    slapd.start()
    slapd.change(DIRECTORY, tool="ldapadd")
    os.mkdir(f"{workdir}/hearth")
    extra = LDAP_SECTION.format(url=slapd.url, service=SERVICE_DN, password=SERVICE_PW, base=BASE,
                                pool_size=POOL_SIZE)
    hearth = Server(hearth_server.binary, f"{workdir}/hearth", host=HEARTH_HOST, extra=extra,
                    registration=False)
    try:
        yield slapd, hearth
    finally:
        hearth.stop()
        slapd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def login(hearth, user, password, resource="py"):
    c = Client(hearth, f"{user}@{hearth.domain}", password, resource=resource)
    return c, await c.login()


def test_directory_passwords_and_the_group_filter(ldap):
    _, hearth = ldap

    async def scenario():
        alice, ok = await login(hearth, "alice", "alice-pw")
        assert ok, hearth.log_tail()
        assert alice.mechanism() == "PLAIN"
        # Only PLAIN is offered: SCRAM would need keys the directory does not give out.
        mechanisms = [m.text for f in alice.stream_features for m in f.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
        assert mechanisms == ["PLAIN"], mechanisms
        wrong, ok = await login(hearth, "bob", "not-bobs")
        assert not ok and wrong.auth_failures
        # mallory is in the directory with the right password, but not in the xmpp group.
        outsider, ok = await login(hearth, "mallory", "mallory-pw")
        assert not ok
        nobody, ok = await login(hearth, "nobody", "x")
        assert not ok
        for c in (alice, wrong, outsider, nobody):
            await c.close()

    run(scenario())


def connections_to(slapd):
    """Connections established to slapd's plain LDAP port, counted at the connecting end."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "dst", f"{LDAP_HOST}:{slapd.port}"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


async def login_burst(hearth, count, resource):
    """`count` logins at once, every fifth with a wrong password; returns their outcomes."""
    users = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")]
    clients = []
    for i in range(count):
        user, password = users[i % len(users)]
        wrong = i % 5 == 4
        clients.append((Client(hearth, f"{user}@{hearth.domain}", "wrong" if wrong else password,
                               resource=f"{resource}{i}"), wrong))
    results = await asyncio.gather(*(c.login(presence=False, roster=False) for c, _ in clients))
    for c, _ in clients:
        await c.close()
    return [(ok, wrong, [str(f) for f in c.auth_failures]) for (c, wrong), ok in zip(clients, results)]


def test_concurrent_logins_share_pooled_connections_that_outlive_a_restart(ldap):
    """20 logins at once, wrong passwords among them, bind on at most pool_size connections (plus
    the service account's search connection); after slapd restarts, the pooled connections it
    closed are replaced without a login failing."""
    slapd, hearth = ldap

    def check(outcomes):
        for ok, wrong, failures in outcomes:
            assert ok != wrong, (outcomes, hearth.log_tail())
            if wrong:
                assert "not-authorized" in failures[0], failures

    peak = 0
    watching = threading.Event()

    def watch():
        nonlocal peak
        while not watching.wait(0.005):
            peak = max(peak, connections_to(slapd))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        check(run(login_burst(hearth, 20, "burst")))
    finally:
        watching.set()
        watcher.join()
    assert 0 < peak <= POOL_SIZE + 1, peak
    slapd.stop()
    slapd.start()
    check(run(login_burst(hearth, 10, "restarted")))
    assert connections_to(slapd) <= POOL_SIZE + 1


def test_a_directory_outage_fails_logins_but_not_sessions(ldap):
    slapd, hearth = ldap

    async def scenario():
        alice, ok = await login(hearth, "alice", "alice-pw", "outage")
        assert ok
        carol, ok = await login(hearth, "carol", "carol-pw", "outage")
        assert ok
        slapd.stop()
        try:
            bob, ok = await login(hearth, "bob", "bob-pw", "outage")
            assert not ok
            assert "temporary-auth-failure" in str(bob.auth_failures[0]), bob.auth_failures
            # Sessions opened before the outage still chat.
            alice.send_message(mto=carol.boundjid.bare, mbody="still here", mtype="chat")
            msg = await asyncio.wait_for(carol.messages.get(), TIMEOUT)
            assert msg["body"] == "still here"
        finally:
            slapd.start()
        bob, ok = await login(hearth, "bob", "bob-pw", "outage")
        assert ok, hearth.log_tail()
        for c in (alice, carol, bob):
            await c.close()

    run(scenario())


async def roster_push(client, jid, subscription):
    """Waits for the roster push of `jid` with `subscription` ("remove" for a removal)."""
    while True:
        iq = await asyncio.wait_for(client.roster_pushes.get(), TIMEOUT)
        for item_jid, item in iq["roster"]["items"].items():
            if str(item_jid) == jid and item["subscription"] == subscription:
                return item


def test_directory_groups_are_shared_roster_groups(ldap):
    slapd, hearth = ldap
    sales = f"cn=Sales,ou=groups,{BASE}"
    bob_jid, carol_jid = f"bob@{hearth.domain}", f"carol@{hearth.domain}"

    async def scenario():
        alice, ok = await login(hearth, "alice", "alice-pw", "groups")
        assert ok
        # bob has never logged in: the directory made his account, and the group his item.
        roster = await alice.roster_from_server()
        assert roster[bob_jid]["subscription"] == "both", roster
        assert roster[bob_jid]["groups"] == ["Sales"], roster
        assert carol_jid not in roster
        # Sales sees Sales online at once.
        bob, ok = await login(hearth, "bob", "bob-pw", "groups")
        assert ok
        while True:
            p = await asyncio.wait_for(alice.presences.get(), TIMEOUT)
            if p["from"].bare == bob_jid and p["type"] == "available":
                break
        # carol joins Sales in the directory: everyone in it gets her within a refresh...
        slapd.change(f"dn: {sales}\nchangetype: modify\nadd: member\nmember: uid=carol,ou=people,{BASE}\n")
        item = await roster_push(alice, carol_jid, "both")
        assert item["groups"] == ["Sales"]
        # ...and bob leaving takes him out of the others' rosters (and them out of his).
        slapd.change(f"dn: {sales}\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,{BASE}\n")
        await roster_push(alice, bob_jid, "remove")
        assert f"alice@{hearth.domain}" not in await bob.roster_from_server()
        for c in (alice, bob):
            await c.close()

    run(scenario())


def test_vcards_carry_the_directory_fields(ldap):
    _, hearth = ldap

    async def scenario():
        alice, ok = await login(hearth, "alice", "alice-pw", "vcard")
        assert ok
        carol, ok = await login(hearth, "carol", "carol-pw", "vcard")
        assert ok
        iq = carol.Iq(stype="get", sto=f"alice@{hearth.domain}")
        iq.append(ET.Element("{vcard-temp}vCard"))
        card = (await iq.send(timeout=TIMEOUT)).xml.find("{vcard-temp}vCard")
        text = lambda path: card.findtext(path, namespaces={"v": "vcard-temp"})
        assert text("v:FN") == "Alice Liddell"
        assert text("v:EMAIL/v:USERID") == "alice@example.org"
        assert text("v:TEL/v:NUMBER") == "+49 30 1234"
        assert base64.b64decode(text("v:PHOTO/v:BINVAL")) == PHOTO
        for c in (alice, carol):
            await c.close()

    run(scenario())


@pytest.mark.parametrize("transport", ["ldaps", "starttls", "ldaps-untrusted"])
def test_binding_as_the_user_over_tls_with_a_company_ca(ldap, hearth_server, transport):
    """Active Directory style: no service account, the user binds with a DN made from the
    username, over LDAPS or StartTLS, the directory's certificate from a company CA. Without
    that CA in `ca_file` the directory is not trusted and logins fail (temporarily)."""
    slapd, _ = ldap
    url = slapd.url if transport == "starttls" else slapd.ldaps_url
    ca = "" if transport == "ldaps-untrusted" else f'ca_file = "{slapd.ca}"\n'
    section = (f'[auth.ldap]\nurl = "{url}"\nstarttls = {str(transport == "starttls").lower()}\n'
               f'{ca}user_dn = "uid={{user}},ou=people,{BASE}"\n'
               f'base_dn = "ou=people,{BASE}"\n'
               f'user_filter = "(&(uid={{user}})(memberOf=cn=xmpp,ou=groups,{BASE}))"\n')
    with tempfile.TemporaryDirectory(prefix="hearth-ldap-tls-") as workdir:
        hearth = Server(hearth_server.binary, workdir, host="127.0.0.62", extra=section, registration=False)
        try:
            async def scenario():
                alice, ok = await login(hearth, "alice", "alice-pw")
                if transport == "ldaps-untrusted":
                    assert not ok
                    assert "temporary-auth-failure" in str(alice.auth_failures[0])
                    assert "invalid peer certificate" in hearth.log() or "UnknownIssuer" in hearth.log(), hearth.log_tail()
                    await alice.close()
                    return
                assert ok, hearth.log_tail()
                wrong, ok = await login(hearth, "alice", "not-alices")
                assert not ok
                # Right password, but the filter (read as mallory herself) leaves her out.
                mallory, ok = await login(hearth, "mallory", "mallory-pw")
                assert not ok
                for c in (alice, wrong, mallory):
                    await c.close()

            run(scenario())
        finally:
            hearth.stop()
