"""External components (XEP-0114) with slixmpp's component mode (a library we did not write, as
gateways and bots built on it connect): an echo bot attaches to its own hearth on a domain of
its own, a slixmpp user talks to it, it sends presence and IQs to the user, and a wrong secret
is refused."""

import asyncio
import shutil
import tempfile

import pytest
import slixmpp

from conftest import Server
from test_slixmpp import TIMEOUT, Client, next_item, run

HOST = "127.0.0.53"
COMPONENT = "echo.localhost"
SECRET = "echo-bot-secret"


@pytest.fixture(scope="module")
def hearth(hearth_server):
    """A hearth that lets the echo bot connect as echo.localhost."""
    workdir = tempfile.mkdtemp(prefix="hearth-component-")
    srv = Server(hearth_server.binary, workdir, host=HOST,
                 extra=f'[components.hosts."{COMPONENT}"]\nsecret = "{SECRET}"\nname = "Echo bot"\n')
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class EchoBot(slixmpp.ComponentXMPP):
    """Answers every chat message with its text, from the address it was sent to."""

    def __init__(self, server, secret=SECRET):
        super().__init__(COMPONENT, secret, server.host, server.component_port)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0092")
        self.plugin["xep_0030"].add_identity(category="gateway", itype="irc", name="Echo bot")
        self.stream_errors = []
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self._settle(True))
        self.add_event_handler("disconnected", lambda _: self._settle(False))
        self.add_event_handler("stream_error", self.stream_errors.append)
        self.add_event_handler("message", self._echo)

    def _settle(self, ok):
        if not self.started.done():
            self.started.set_result(ok)

    def _echo(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.send_message(mto=msg["from"], mfrom=msg["to"], mbody=f"echo: {msg['body']}",
                              mtype="chat")

    async def attach(self):
        self.connect()
        return await asyncio.wait_for(self.started, TIMEOUT)

    async def close(self):
        try:
            await asyncio.wait_for(self.disconnect(wait=2.0), 5)
        except asyncio.TimeoutError:
            self.abort()


def test_a_user_and_the_bot_talk_both_ways(hearth):
    jid, pw = hearth.new_account("talker")

    async def scenario():
        bot = EchoBot(hearth)
        assert await bot.attach(), f"the component could not attach: {bot.stream_errors}"
        user = Client(hearth, jid, pw)
        assert await user.login()
        try:
            # The server lists the gateway; the gateway answers its own disco#info.
            items = await user.plugin["xep_0030"].get_items(jid=hearth.domain, timeout=TIMEOUT)
            assert (COMPONENT, None, "Echo bot") in items["disco_items"]["items"]
            info = await user.plugin["xep_0030"].get_info(jid=COMPONENT, timeout=TIMEOUT)
            assert ("gateway", "irc", None, "Echo bot") in info["disco_info"]["identities"]

            user.send_message(mto=f"alice@{COMPONENT}", mbody="hello", mtype="chat")
            echo = await next_item(user.messages, lambda m: m["body"] == "echo: hello",
                                   "the echo")
            assert echo["from"].bare == f"alice@{COMPONENT}"

            # The bot asks to see the user's presence, and queries the user's client.
            bot.send_presence(pto=jid, pfrom=f"alice@{COMPONENT}", ptype="subscribe")
            request = await next_item(user.subscriptions, what="the subscription request")
            assert request["from"].bare == f"alice@{COMPONENT}" and request["type"] == "subscribe"
            version = await bot.plugin["xep_0092"].get_version(
                user.boundjid.full, ifrom=f"alice@{COMPONENT}", timeout=TIMEOUT)
            assert version["type"] == "result" and version["software_version"]["name"]
        finally:
            await user.close()
            await bot.close()

    run(scenario())


def test_a_wrong_secret_is_refused(hearth):
    async def scenario():
        bot = EchoBot(hearth, secret="not-the-secret")
        try:
            assert not await bot.attach(), "a component with a wrong secret was accepted"
            assert [e["condition"] for e in bot.stream_errors] == ["not-authorized"]
        finally:
            bot.abort()

    run(scenario())
    assert "component handshake with a wrong secret" in hearth.log()
    assert SECRET not in hearth.log() and "not-the-secret" not in hearth.log()


def test_the_bot_is_unavailable_while_detached(hearth):
    jid, pw = hearth.new_account("lonely")

    async def scenario():
        user = Client(hearth, jid, pw)
        assert await user.login()
        try:
            with pytest.raises(slixmpp.exceptions.IqError) as err:
                await user.plugin["xep_0030"].get_info(jid=COMPONENT, timeout=TIMEOUT)
            assert err.value.iq["error"]["condition"] == "service-unavailable"
        finally:
            await user.close()

    run(scenario())

