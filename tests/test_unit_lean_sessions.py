"""A page's session starts without a copy of every component's config, and is a session all the same."""

import gradio as gr
from gradio.state_holder import SessionState

from ui.lean_sessions import start_sessions_without_config_copies


def test_a_new_session_copies_no_config_and_still_holds_its_components_and_state():
    with gr.Blocks() as demo:
        box = gr.Textbox("hello")
        remembered = gr.State([1, 2])
    start_sessions_without_config_copies()
    session = SessionState(demo)
    assert session.config_values == {}
    assert session[box._id] is box and session[remembered._id] == [1, 2]
    session[remembered._id] = [3]  # an event's new State value
    session._update_value_in_config(box._id, "changed")  # an event's new value for a component
    assert session[remembered._id] == [3] and box._id not in session.config_values


def test_a_component_whose_props_an_event_changed_keeps_its_config_and_latest_value():
    with gr.Blocks() as demo:
        box = gr.Textbox("hello")
    start_sessions_without_config_copies()
    session = SessionState(demo)
    session[box._id] = gr.Textbox("new", label="changed by an event", render=False)  # what gr.update() does
    session._update_value_in_config(box._id, "typed")
    assert session.config_values[box._id]["props"]["value"] == "typed"
