"""Where two greedy replies part, by token where both sides gave tokens, else by character."""

from backends import TokenChoice
from console.chat import ChatSession, Turn
from console.side_by_side import parting_point


def reply(text: str, tokens: tuple[str, ...] = ()) -> ChatSession:
    choices = tuple(TokenChoice(token, -0.1, ()) for token in tokens)
    return ChatSession(turns=[Turn("user", "q"), Turn("assistant", text, tokens=choices)])


def test_replies_part_at_the_first_token_that_differs():
    a = reply("The answer is 5.", ("The", " answer", " is", " 5", "."))
    b = reply("The answer is five.", ("The", " answer", " is", " five", "."))
    assert parting_point(a, b) == 3


def test_without_tokens_replies_part_at_the_first_character_that_differs():
    assert parting_point(reply("abcd"), reply("abXd")) == 2


def test_the_same_replies_do_not_part_and_a_longer_one_parts_where_the_shorter_ends():
    assert parting_point(reply("same"), reply("same")) is None
    assert parting_point(reply("same"), reply("same and more")) == 4
