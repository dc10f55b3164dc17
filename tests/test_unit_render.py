from console.chat import ChatSession, ReplyStats, Turn
from ui.render import chatbot_messages, format_stop_words, parse_stop_words


def test_replies_show_their_stats_and_errors_beneath():
    session = ChatSession()
    session.turns += [
        Turn("user", "q"),
        Turn("assistant", "a", ReplyStats(ttft_ms=10, tokens=5, tokens_per_s=20, finish="stop")),
        Turn("assistant", "", ReplyStats(finish="error", error="server down")),
    ]
    user, ok, failed = chatbot_messages(session)
    assert user == {"role": "user", "content": "q"}
    assert ok["content"].startswith("a\n\n<sub>TTFT 10 ms · 5 tokens · 20.0 tok/s · stop")
    assert "**Error:** server down" in failed["content"]


def test_a_reply_in_progress_has_no_footer_yet():
    session = ChatSession(turns=[Turn("assistant", "part", ReplyStats())])
    assert chatbot_messages(session)[0]["content"] == "part"


def test_stop_words_round_trip_with_escaped_newlines():
    stops = parse_stop_words("###\n\\n\\nUser:\n")
    assert stops == ("###", "\n\nUser:")
    assert parse_stop_words(format_stop_words(stops)) == stops
