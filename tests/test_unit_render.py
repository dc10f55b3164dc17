import gradio as gr

from console.chat import ChatSession, ReplyStats, Turn
from ui.chat import ChatPainter
from ui.render import chatbot_messages, display_text, format_stop_words, parse_stop_words


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


def test_a_reply_coloured_by_token_probability_reads_as_written():
    from backends import TokenChoice
    from console.token_view import coloured_tokens

    tokens = (
        TokenChoice("Hi", -0.1, ((" Hello", -2.0),)),
        TokenChoice(" *there* <b>", -3.0),
        TokenChoice("\nok", -0.5),
    )
    html_text = coloured_tokens("Hi *there* <b>\nok", tokens)
    assert html_text.count('<span class="token"') == 3
    assert "&#42;there&#42; &#60;b&#62;" in html_text and "<br>ok" in html_text  # not Markdown, not HTML
    assert 'title="90.5%; also: &#x27; Hello&#x27; 14%"' in html_text  # its probability, then the alternatives
    assert "rgba(239, 68, 68, 0.62)" in html_text  # a 5% token is shaded deep


def test_tokens_past_what_the_reply_kept_are_left_out():
    from backends import TokenChoice
    from console.token_view import coloured_tokens

    # a stop word cut the reply after "Paris"; the tokens go on
    html_text = coloured_tokens("Paris.", (TokenChoice("Paris", -0.01), TokenChoice(" London", -5.0)))
    assert html_text.count('class="token"') == 1 and html_text.endswith("</span>.")


def painter_and_chat(turns: int) -> tuple[ChatPainter, ChatSession]:
    with gr.Blocks():
        painter = ChatPainter(gr.Chatbot())
    session = ChatSession()
    for i in range(turns):
        session.turns += [Turn("user", f"question {i}"), Turn("assistant", f"answer {i}", ReplyStats(finish="stop"))]
    session.turns += [Turn("user", "one more"), Turn("assistant", "", ReplyStats())]
    return painter, session


def test_a_streaming_reply_paints_what_the_whole_chat_paints():
    painter, session = painter_and_chat(turns=5)
    paint, reply = painter.for_reply(), session.turns[-1]
    for word in ["Once", " upon", " a", " time"]:
        reply.content += word
        assert paint(session) == painter(session)
    reply.stats.finish, reply.stats.tokens = "stop", 4
    assert paint(session) == painter(session)
    assert "4 tokens" in paint(session)[-1]["content"][0]["text"]


def test_while_a_reply_streams_only_the_reply_is_rendered_again(monkeypatch):
    painter, session = painter_and_chat(turns=50)
    rendered = []
    monkeypatch.setattr("ui.chat.display_text", lambda turn: rendered.append(turn) or display_text(turn))
    paint = painter.for_reply()
    for _ in range(10):
        session.turns[-1].content += "word "
        paint(session)
    assert len(rendered) == len(session.turns) + 9  # every turn once, then the reply alone


def test_a_chat_edited_while_a_reply_streams_is_painted_as_it_now_is():
    painter, session = painter_and_chat(turns=3)
    paint = painter.for_reply()
    session.turns[-1].content = "partial"
    paint(session)
    session.rewind_to_last_user()  # "Edit last message" pressed mid-reply
    assert paint(session) == painter(session) and len(paint(session)) == 6
    session.turns.clear()
    assert paint(session) == []
