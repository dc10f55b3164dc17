from backends.stops import StopMatcher


def run(stops, chunks):
    matcher = StopMatcher(stops)
    shown = "".join(matcher.feed(chunk) for chunk in chunks)
    return shown + matcher.flush(), matcher.stopped


def test_without_stops_text_passes_through():
    assert run((), ["a", "b"]) == ("ab", False)


def test_stop_inside_a_chunk_cuts_before_it():
    assert run(("END",), ["hello END world"]) == ("hello ", True)


def test_stop_split_across_chunks_is_caught_and_never_shown():
    assert run(("</s>",), ["one </", "s> two"]) == ("one ", True)


def test_a_prefix_that_is_not_a_stop_is_released():
    assert run(("STOP",), ["ST", "ART", " done"]) == ("START done", False)


def test_earliest_of_several_stops_wins():
    assert run(("b", "a"), ["xxab"]) == ("xx", True)
