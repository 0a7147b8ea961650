"""The Centrifugo JSON codec: framing, omitempty replies, pushes, errors, malformed input."""

from __future__ import annotations

import base64
import json

import pytest

from app.core.realtime import protocol as proto


def test_encode_frame_joins_commands_with_newlines_and_no_trailing_newline():
    frame = proto.encode_frame([{"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": "a"}}])
    assert frame == '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}'


def test_pong_is_an_empty_object():
    assert proto.encode_frame([proto.PONG]) == "{}"


def test_connect_command_carries_token_and_subs():
    cmd = proto.connect_command(
        1, "conn-jwt", {"o/u": proto.subscribe_request("sub-jwt")}, "telex-start", "0.1"
    )
    assert cmd == {
        "id": 1,
        "connect": {
            "token": "conn-jwt",
            "name": "telex-start",
            "version": "0.1",
            "subs": {"o/u": {"token": "sub-jwt"}},
        },
    }


def test_subscribe_request_recovery_fields_are_omitted_when_empty():
    assert proto.subscribe_request("t", recover=True) == {"token": "t", "recover": True}
    assert proto.subscribe_request("t", offset=7, epoch="abcd", recover=True) == {
        "token": "t",
        "recover": True,
        "offset": 7,
        "epoch": "abcd",
    }
    assert proto.subscribe_request(None, offset=7, epoch="x") == {}


def test_decode_batched_frame_with_reply_push_and_ping():
    frame = "\n".join(
        [
            '{"id":1,"connect":{"client":"c1","version":"6.9.1 OSS","ping":25,"pong":true,'
            '"subs":{"o/u":{"recoverable":true,"epoch":"EP","offset":3,"positioned":true}}}}',
            '{"push":{"channel":"o/u","pub":{"data":{"x":1},"offset":4}}}',
            "{}",
        ]
    )
    reply, push, ping = proto.decode_frame(frame)
    assert isinstance(reply, proto.Reply)
    result = proto.parse_connect_result(reply.result["connect"])
    assert (result.client, result.ping, result.pong) == ("c1", 25, True)
    assert result.subs["o/u"] == proto.SubscribeResult(
        recoverable=True, positioned=True, epoch="EP", offset=3
    )
    assert push == proto.PublicationPush("o/u", proto.Publication({"x": 1}, 4))
    assert ping == proto.Ping()


def test_reply_error_and_retry_rule():
    (reply,) = proto.decode_frame('{"id":3,"error":{"code":109,"message":"token expired"}}')
    assert isinstance(reply, proto.Reply)
    assert reply.error == proto.ReplyError(109, "token expired")
    assert reply.error.retryable
    assert not proto.ReplyError(103, "permission denied").retryable
    assert proto.ReplyError(100, "internal", temporary=True).retryable


def test_empty_result_objects_are_kept():
    (reply,) = proto.decode_frame('{"id":2,"subscribe":{}}')
    assert isinstance(reply, proto.Reply)
    assert proto.parse_subscribe_result(reply.result["subscribe"]) == proto.SubscribeResult()


def test_unsubscribe_and_disconnect_pushes():
    unsub, disc, other = proto.decode_frame(
        '{"push":{"channel":"a","unsubscribe":{"code":2501,"reason":"subscription expired"}}}\n'
        '{"push":{"disconnect":{"code":3005,"reason":"connection expired"}}}\n'
        '{"push":{"channel":"a","join":{"info":{"user":"1","client":"c"}}}}'
    )
    assert unsub == proto.UnsubscribePush("a", 2501, "subscription expired")
    assert disc == proto.DisconnectPush(3005, "connection expired")
    assert other == proto.OtherPush("join")


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1,2]",
        '{"id":"x","connect":{}}',
        '{"id":1}',
        '{"push":{"channel":"a","pub":{"offset":1}}}',
        '{"push":{"channel":"a","pub":{"data":1,"offset":-1}}}',
        '{"push":"oops"}',
        '{"unexpected":true}',
    ],
)
def test_malformed_lines_are_skipped_and_the_rest_of_the_frame_survives(line, caplog):
    messages = proto.decode_frame(f"{line}\n{{}}")
    assert messages == [proto.Ping()]
    assert "malformed message" in caplog.text


def test_a_frame_yields_at_most_the_cap_of_messages_and_says_what_it_dropped(caplog):
    frame = "\n".join(["{}"] * (proto.MAX_MESSAGES_PER_FRAME + 2_500))
    assert len(proto.decode_frame(frame)) == proto.MAX_MESSAGES_PER_FRAME
    assert len(proto.decode_frame("{}\n{}\n{}", limit=2)) == 2
    dropped = [r.getMessage() for r in caplog.records]
    assert dropped == [
        f"Ignoring 2500 line(s) of one frame from the push server "
        f"({proto.MAX_MESSAGES_PER_FRAME} are read at most)",
        "Ignoring 1 line(s) of one frame from the push server (2 are read at most)",
    ]


def test_a_frame_of_broken_lines_logs_a_few_and_counts_the_rest(caplog):
    assert proto.decode_frame("\n".join(["nope"] * 1_000 + ["{}"])) == [proto.Ping()]
    assert len(caplog.records) == 6
    assert caplog.records[-1].getMessage() == "Ignoring 995 more broken message(s) in that frame"


def test_close_codes():
    assert proto.close_allows_reconnect(None)
    assert proto.close_allows_reconnect(1006)
    assert proto.close_allows_reconnect(3005)
    assert proto.close_allows_reconnect(4499)
    assert not proto.close_allows_reconnect(3500)
    assert not proto.close_allows_reconnect(3999)
    assert not proto.close_allows_reconnect(4500)


def _jwt(claims: object) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


def test_token_expiry_reads_exp_without_verifying():
    assert proto.token_expiry(_jwt({"sub": "1", "exp": 1893456000})) == 1893456000.0
    assert proto.token_expiry(_jwt({"sub": "1"})) is None
    assert proto.token_expiry("garbage") is None
    assert proto.token_expiry(_jwt({"exp": True})) is None
