"""Bookmarks with Gajim's nbxmpp: Gajim stores XEP-0402 native bookmarks (publish-options,
forcing the node options as Gajim does); a client on private XML storage (XEP-0049/0048) sees
the same rooms, and the other way round (XEP-0402 #compat, XEP-0411)."""

from nbxmpp.protocol import JID
from nbxmpp.structs import BookmarkData

from test_nbxmpp import Gajim, finish


def test_nbxmpp_native_and_private_bookmarks_agree(server):
    jid, pw = server.new_account("bmgajim")
    g = Gajim(server, jid, pw).login()
    native = g.client.get_module("NativeBookmarks")
    private = g.client.get_module("PrivateBookmarks")
    room = BookmarkData(jid=JID.from_string("team@conference.localhost"), name="Team", nick="G", autojoin=True)
    # nbxmpp publishes without waiting for the answer (its task is done at once): a ping
    # round trip makes sure the server has handled the publish.
    native.store_bookmarks([room])
    g.ping()
    got = finish(private.request_bookmarks(), "private bookmarks")
    assert [(str(b.jid), b.name, b.nick, b.autojoin) for b in got] == [("team@conference.localhost", "Team", "G", True)]
    legacy = BookmarkData(jid=JID.from_string("old@conference.localhost"), name="Old")
    private.store_bookmarks([room, legacy])
    g.ping()
    got = finish(native.request_bookmarks(), "native bookmarks")
    assert sorted(str(b.jid) for b in got) == ["old@conference.localhost", "team@conference.localhost"]
    g.client.disconnect()
