"""Admin-only controls as a page opens: laid out for everyone where the access policy answers the same for
every user, set by the page's opening event only where log-ins name admins."""

from types import SimpleNamespace

import gradio as gr

from console.access import OPEN_CONSOLE, AccessPolicy
from ui.admin_only import AdminOnly


def laid_out(policy: AccessPolicy):
    with gr.Blocks():
        admin = AdminOnly(SimpleNamespace(access=policy))  # it reads the console's access policy alone
        switch = admin.controls(gr.Button("Switch"))
        reason = admin.reason()
    return admin, switch.get_config(), reason.get_config()


def test_where_nobody_may_change_the_engine_the_controls_are_laid_out_off_with_the_reason():
    admin, switch, reason = laid_out(AccessPolicy(reachable_by_others=True))
    assert switch["interactive"] is False
    assert reason["visible"] is True and OPEN_CONSOLE in reason["value"]
    assert admin.outputs == [] and admin.on_load(gr.Request(username=None)) == ()


def test_where_everyone_may_the_controls_are_laid_out_on_and_the_opening_sets_nothing():
    for policy in (AccessPolicy(), AccessPolicy(logins=True)):  # private; log-ins with no admins named
        admin, switch, reason = laid_out(policy)
        assert switch.get("interactive") is not False and reason["visible"] is False
        assert admin.outputs == [] and admin.on_load(gr.Request(username="bob")) == ()


def test_where_log_ins_name_admins_the_page_s_opening_turns_them_off_for_everyone_else():
    admin, switch, reason = laid_out(AccessPolicy(logins=True, admins=frozenset({"ann"})))
    assert switch.get("interactive") is not False and reason["visible"] is False
    assert len(admin.outputs) == 2
    assert admin.on_load(gr.Request(username="ann")) == (gr.skip(), gr.skip())
    off, why = admin.on_load(gr.Request(username="bob"))
    assert off == gr.update(interactive=False)
    assert why.visible and "bob: may chat" in why.value and "admins only" in why.value
